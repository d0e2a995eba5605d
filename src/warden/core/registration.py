"""Dynamic client registration policy (RFC 7591 §3, with RFC 7592 management): initial access
tokens, what each allows, and the registration a registered client manages itself through.

An initial access token (RFC 7591 §3: the OAuth 2.0 bearer token the operator hands out) carries a
policy: the grants a client registered with it may get at most, the tenant it is placed in, and
whether it waits for an operator's approval before it may authenticate. A token may be limited in
uses and lifetime. Only keyed hashes of it and of registration access tokens are stored.

Requests beyond the policy are refused, not narrowed (DESIGN.md: a scope a client may not have is
never silently dropped): a `scope` value the policy does not grant, or a `resources` entry it does
not name, is `invalid_client_metadata` (RFC 7591 §3.2.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["ClientRegistration", "PolicyGrant", "RegistrationToken", "TokenState", "decide_grants"]

TokenState = Literal["active", "expired", "revoked", "used_up"]
PolicyGrant = tuple[str, tuple[str, ...]]  # (API identifier, scopes)


@dataclass(frozen=True, slots=True)
class RegistrationToken:
    token_id: str
    hash: bytes
    grants: tuple[PolicyGrant, ...]
    created_at: float
    tenant: str | None = None
    approval: bool = False  # clients registered with it wait for `warden clients approve`
    max_uses: int | None = None
    uses: int = 0
    expires_at: float | None = None
    revoked_at: float | None = None
    created_by: str = ""

    def state(self, now: float) -> TokenState:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "used_up"
        return "active"

    def __repr__(self) -> str:  # the hash is not secret, but has no business in logs either
        return f"RegistrationToken(token_id={self.token_id!r}, uses={self.uses}, max_uses={self.max_uses})"


@dataclass(frozen=True, slots=True)
class ClientRegistration:
    """A client created through `POST /oauth2/register`: its registration access token (hashed) and
    the policy it was registered under, which also bounds its own updates (RFC 7592 §2.2)."""

    client_id: str
    token_id: str
    access_token_hash: bytes
    grants: tuple[PolicyGrant, ...]
    created_at: float

    def __repr__(self) -> str:
        return f"ClientRegistration(client_id={self.client_id!r}, token_id={self.token_id!r})"


def decide_grants(policy: Sequence[PolicyGrant], scopes: tuple[str, ...] | None,
                  resources: tuple[str, ...] | None) -> list[PolicyGrant]:
    """The grants a registration asking for `scopes` at `resources` gets under `policy`, in the
    policy's order (its first kept grant is the client's default); raise ValueError naming what the
    policy does not allow.

    No `resources`: every API of the policy. No `scope`: every scope the policy grants at those
    APIs. With `scope`, each API keeps the requested scopes it grants, and an API left with none is
    dropped; every requested scope must be granted at one API at least."""
    by_api = dict(policy)
    if resources is not None:
        for resource in resources:
            if resource not in by_api:
                raise ValueError(f"resource {resource} is not allowed by the initial access token")
        chosen = [(api, by_api[api]) for api, _ in policy if api in resources]
    else:
        chosen = list(policy)
    if scopes is None:
        return chosen
    out = []
    for api, allowed in chosen:
        kept = tuple(s for s in allowed if s in scopes)
        if kept:
            out.append((api, kept))
    granted = {s for _, kept in out for s in kept}
    for scope in scopes:
        if scope not in granted:
            raise ValueError(f"scope {scope} is not allowed by the initial access token")
    return out
