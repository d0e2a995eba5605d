"""Whether a verified Warden access token is still active, and why not (introspection, admin API)."""

from __future__ import annotations

from typing import Any

from warden.core.revocation import is_revoked_by_client
from warden.protocol.errors import InvalidGrant
from warden.protocol.token_exchange import act_chain
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
    iat = claims.get("iat", 0)
    if is_revoked_by_client(iat, entry.client.revoked_before):
        return "client_revoked"
    if "act" in claims:  # an exchanged token (RFC 8693): every client of its chain must still stand
        return _chain_state(claims, registry, iat)
    return "active"


def _chain_state(claims: dict[str, Any], registry: Registry, iat: float) -> str:
    """The subject's client (when `sub` names one: a federated subject does not) and every prior actor
    must be enabled and not revoked since before `iat`: revoking any client of a delegation chain ends
    the tokens exchanged through it, here at once (resource servers: see the README)."""
    try:
        actors = act_chain(claims["act"])
    except InvalidGrant:
        return "invalid"
    subject = registry.clients.get(claims["sub"]) if isinstance(claims.get("sub"), str) else None
    if subject is not None and (not subject.client.enabled or is_revoked_by_client(iat, subject.client.revoked_before)):
        return "client_revoked" if subject.client.enabled else "client_disabled"
    for client_id in actors[1:]:  # actors[0] is the requesting client, `client_id`, checked above
        entry = registry.clients.get(client_id)
        if entry is None or not entry.client.enabled:
            return "client_disabled"
        if is_revoked_by_client(iat, entry.client.revoked_before):
            return "client_revoked"
    return "active"


def token_audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []
