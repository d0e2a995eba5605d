"""Token introspection (RFC 7662 §2).

The caller must authenticate (§2.1). Anything the caller may not learn about -
unknown, expired, revoked, foreign or another audience's token - is answered
`{"active": false}` with no other member (§2.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from warden.protocol.errors import InvalidRequest
from warden.protocol.form import Form

__all__ = ["IntrospectionRequest", "parse_introspection_request", "render_active", "INACTIVE"]

INACTIVE: dict[str, Any] = {"active": False}
_HINTS = ("access_token", "refresh_token")


@dataclass(frozen=True)
class IntrospectionRequest:
    token: str
    token_type_hint: str | None

    def __repr__(self) -> str:
        return f"IntrospectionRequest(token=<hidden>, token_type_hint={self.token_type_hint!r})"


def parse_introspection_request(form: Form) -> IntrospectionRequest:
    token = form.single("token")
    if token is None:
        raise InvalidRequest("token is required", reason="missing_token")
    hint = form.single("token_type_hint")  # §2.1: an unknown hint is ignored, not an error
    return IntrospectionRequest(token, hint if hint in _HINTS else None)


def render_active(claims: Mapping[str, Any]) -> dict[str, Any]:
    """§2.2 members for an active JWT access token."""
    out: dict[str, Any] = {"active": True, "token_type": "DPoP" if "jkt" in claims.get("cnf", {}) else "Bearer"}
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "tenant", "cnf"):
        if name in claims:
            out[name] = claims[name]
    return out
