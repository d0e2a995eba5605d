"""Whether a verified Warden access token is still active, and why not (introspection, admin API)."""

from __future__ import annotations

from typing import Any

from warden.core.revocation import is_revoked_by_client
from warden.services.registry import Registry

__all__ = ["token_audiences", "token_state"]


def token_state(claims: dict[str, Any], registry: Registry, now: float) -> str:
    """`active`, or the reason it is not: expired, revoked, client_disabled, client_revoked."""
    if claims["exp"] <= now:
        return "expired"
    if claims["jti"] in registry.revoked:
        return "revoked"
    entry = registry.clients.get(claims["client_id"])
    if entry is None or not entry.client.enabled:
        return "client_disabled"
    if is_revoked_by_client(claims.get("iat", 0), entry.client.revoked_before):
        return "client_revoked"
    return "active"


def token_audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []
