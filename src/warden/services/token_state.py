"""Whether a verified Warden access token is still active, and why not (introspection, admin API)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from warden._drive import arun, run
from warden.core.revocation import is_revoked_by_client
from warden.protocol.errors import InvalidGrant
from warden.protocol.token_exchange import act_chain
from warden.services.registry import ClientEntry, Registry

__all__ = ["atoken_state", "token_audiences", "token_state"]


def token_state(claims: dict[str, Any], registry: Registry, now: float) -> str:
    """`active`, or the reason it is not: expired, revoked, client_disabled, client_revoked.

    A partial registry may look the token's clients up in the store, blocking the caller for one
    query the first time; `atoken_state` waits for them without blocking the event loop."""
    return run(_state(claims, registry, now), registry.client_blocking)


async def atoken_state(claims: dict[str, Any], registry: Registry, now: float) -> str:
    """`token_state` for coroutines: a client that is not cached is loaded without blocking."""
    return await arun(_state(claims, registry, now), registry.client)


def _state(claims: dict[str, Any], registry: Registry, now: float) -> Generator[str, ClientEntry | None, str]:
    """The state of a token, yielding each client id it names to be looked up (`warden._drive`)."""
    before = _state_before_clients(claims, registry, now)
    if before is not None:
        return before
    named = _clients_named(claims)
    if named is None:
        return "invalid"
    entries: dict[str, ClientEntry | None] = {}
    for client_id in named:
        entries[client_id] = yield client_id
    return _state_of_clients(claims, entries)


def _state_before_clients(claims: dict[str, Any], registry: Registry, now: float) -> str | None:
    if claims["exp"] <= now:
        return "expired"
    if claims["jti"] in registry.revoked:
        return "revoked"
    return None


def _clients_named(claims: dict[str, Any]) -> list[str] | None:
    """The clients whose standing decides the token's: its own and, for an exchanged token
    (RFC 8693), the subject's (when `sub` names a client) and every prior actor; None for an
    `act` claim that is not a chain."""
    named = [claims["client_id"]]
    if "act" in claims:
        try:
            actors = act_chain(claims["act"])
        except InvalidGrant:
            return None
        if isinstance(claims.get("sub"), str):
            named.append(claims["sub"])
        named += actors[1:]  # actors[0] is the requesting client, `client_id`
    return named


def _state_of_clients(claims: dict[str, Any], entries: dict[str, ClientEntry | None]) -> str:
    """Every client of the token must be enabled and not revoked since before its `iat`: revoking
    any client of a delegation chain ends the tokens exchanged through it, here at once (resource
    servers: see the README). A federated subject (`sub` naming no client) stands on its own."""
    iat = claims.get("iat", 0)
    own = entries[claims["client_id"]]
    if own is None or not own.client.enabled:
        return "client_disabled"
    if is_revoked_by_client(iat, own.client.revoked_before):
        return "client_revoked"
    if "act" not in claims:
        return "active"
    subject = entries.get(claims["sub"]) if isinstance(claims.get("sub"), str) else None
    if subject is not None and (not subject.client.enabled or is_revoked_by_client(iat, subject.client.revoked_before)):
        return "client_revoked" if subject.client.enabled else "client_disabled"
    for client_id in act_chain(claims["act"])[1:]:
        entry = entries.get(client_id)
        if entry is None or not entry.client.enabled:
            return "client_disabled"
        if is_revoked_by_client(iat, entry.client.revoked_before):
            return "client_revoked"
    return "active"


def token_audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []
