"""Whether a verified Warden access token is still active, and why not (introspection, admin API)."""

from __future__ import annotations

from typing import Any

from warden.core.revocation import is_revoked_by_client
from warden.services.registry import ClientEntry, Registry

__all__ = ["atoken_state", "token_audiences", "token_state"]


def token_state(claims: dict[str, Any], registry: Registry, now: float) -> str:
    """`active`, or the reason it is not: expired, revoked, client_disabled, client_revoked.

    A partial registry may look the token's client up in the store, blocking the caller for one
    query the first time; `atoken_state` waits for it without blocking the event loop."""
    before = _state_before_client(claims, registry, now)
    return before if before is not None else _state_of_client(claims, registry.client_blocking(claims["client_id"]))


async def atoken_state(claims: dict[str, Any], registry: Registry, now: float) -> str:
    """`token_state` for coroutines: a client that is not cached is loaded without blocking."""
    before = _state_before_client(claims, registry, now)
    return before if before is not None else _state_of_client(claims, await registry.client(claims["client_id"]))


def _state_before_client(claims: dict[str, Any], registry: Registry, now: float) -> str | None:
    if claims["exp"] <= now:
        return "expired"
    if claims["jti"] in registry.revoked:
        return "revoked"
    return None


def _state_of_client(claims: dict[str, Any], entry: ClientEntry | None) -> str:
    if entry is None or not entry.client.enabled:
        return "client_disabled"
    if is_revoked_by_client(claims.get("iat", 0), entry.client.revoked_before):
        return "client_revoked"
    return "active"


def token_audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []
