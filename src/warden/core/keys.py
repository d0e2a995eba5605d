"""Signing-key lifecycle: next -> active -> retired -> removed.

A `next` key is published in the JWKS before it signs anything, so resource
servers have it cached when it becomes `active`; a `retired` key stays published
until every token it signed has expired. These functions decide transitions;
the keyring service applies them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

__all__ = ["KeyState", "RotationPlan", "SigningKey", "plan_rotation", "plan_scheduled", "removable_keys"]


class KeyState(str, Enum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    state: KeyState
    public_jwk: dict[str, str]
    encrypted_private_key: bytes
    created_at: float
    activated_at: float | None = None
    retired_at: float | None = None


@dataclass(frozen=True, slots=True)
class RotationPlan:
    """What rotating one algorithm's keys does: activate, retire, and whether to mint a new `next`."""

    alg: str
    activate: str | None
    retire: tuple[str, ...]
    create_next: bool


def _by_state(keys: Iterable[SigningKey], alg: str, state: KeyState) -> list[SigningKey]:
    return sorted((k for k in keys if k.alg == alg and k.state is state), key=lambda k: k.created_at)


def plan_rotation(keys: Iterable[SigningKey], alg: str) -> RotationPlan:
    """On-demand rotation: the oldest `next` key becomes active, the active key retires,
    and a fresh `next` key is created so the following rotation is equally seamless."""
    keys = list(keys)
    nexts = _by_state(keys, alg, KeyState.NEXT)
    actives = _by_state(keys, alg, KeyState.ACTIVE)
    promote = nexts[0].kid if nexts else None
    return RotationPlan(alg, promote, tuple(k.kid for k in actives), create_next=True)


def plan_scheduled(keys: Iterable[SigningKey], alg: str, now: float, *, interval: float,
                   publish_lead: float) -> RotationPlan | None:
    """Scheduled rotation: rotate when the active key is older than `interval`, but only once
    the `next` key has been published for `publish_lead` seconds (RS JWKS caches have it)."""
    keys = list(keys)
    actives = _by_state(keys, alg, KeyState.ACTIVE)
    nexts = _by_state(keys, alg, KeyState.NEXT)
    if not actives:
        return plan_rotation(keys, alg) if nexts else None
    if not nexts:
        return RotationPlan(alg, None, (), create_next=True)
    active_since = actives[-1].activated_at or actives[-1].created_at
    if now - active_since < interval or now - nexts[0].created_at < publish_lead:
        return None
    return plan_rotation(keys, alg)


def removable_keys(keys: Iterable[SigningKey], now: float, *, max_token_ttl: float,
                   leeway: float = 60.0) -> list[str]:
    """Retired keys whose every token has expired (retired before now - max TTL - leeway)."""
    return [k.kid for k in keys if k.state is KeyState.RETIRED and k.retired_at is not None
            and k.retired_at + max_token_ttl + leeway < now]
