"""Token introspection (RFC 7662 §2).

The caller must authenticate (§2.1). Anything the caller may not learn about -
unknown, expired, revoked, foreign or another audience's token - is answered
`{"active": false}` with no other member (§2.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from warden.protocol.revocation import TokenReference, parse_token_reference

__all__ = ["INACTIVE", "IntrospectionRequest", "parse_introspection_request", "render_active"]

INACTIVE: dict[str, Any] = {"active": False}
IntrospectionRequest = TokenReference  # RFC 7662 §2.1 takes the parameters of RFC 7009 §2.1
parse_introspection_request = parse_token_reference


def render_active(claims: Mapping[str, Any]) -> dict[str, Any]:
    """§2.2 members for an active JWT access token."""
    out: dict[str, Any] = {"active": True, "token_type": "DPoP" if "jkt" in claims.get("cnf", {}) else "Bearer"}
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "tenant", "cnf"):
        if name in claims:
            out[name] = claims[name]
    return out
