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

__all__ = ["RevocationRequest", "TokenReference", "parse_revocation_request", "parse_token_reference"]


_HINTS = ("access_token", "refresh_token")  # §2.1 and the registry of §4.1.2


@dataclass(frozen=True)
class TokenReference:
    """The `token` and `token_type_hint` parameters of §2.1, which RFC 7662 §2.1 reuses."""

    token: str
    token_type_hint: str | None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token=<hidden>, token_type_hint={self.token_type_hint!r})"


def parse_token_reference(form: Form) -> TokenReference:
    """The token a revocation or introspection request names; an unknown hint is ignored (§2.1)."""
    token = form.single("token")
    if token is None:
        raise InvalidRequest("token is required", reason="missing_token")
    hint = form.single("token_type_hint")
    return TokenReference(token, hint if hint in _HINTS else None)


RevocationRequest = TokenReference
parse_revocation_request = parse_token_reference
