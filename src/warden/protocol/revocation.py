"""Token revocation (RFC 7009 §2).

The caller must authenticate and may revoke only tokens issued to it (§2.1): a
valid token issued to another client is refused with an error response and
stays active. An unknown, invalid or expired token is answered 200, as a revoked
one is (§2.2). The endpoint (`warden.server.endpoints.revoke`) decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from warden.protocol.errors import InvalidRequest
from warden.protocol.form import Form

__all__ = ["RevocationRequest", "parse_revocation_request"]


@dataclass(frozen=True)
class RevocationRequest:
    token: str
    token_type_hint: str | None

    def __repr__(self) -> str:
        return f"RevocationRequest(token=<hidden>, token_type_hint={self.token_type_hint!r})"


def parse_revocation_request(form: Form) -> RevocationRequest:
    token = form.single("token")
    if token is None:
        raise InvalidRequest("token is required", reason="missing_token")
    return RevocationRequest(token, form.single("token_type_hint"))
