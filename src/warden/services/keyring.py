"""Signing keys: creation, rotation (on demand and on schedule), removal, and signers.

The lifecycle rules are in `warden.core.keys`; this module applies them to the
store. Every algorithm an API may choose keeps one `active` key and one `next`
key published ahead of use. Several server processes may run maintenance at
once: state changes are compare-and-set, and if two processes ever both create
an active key the newest wins deterministically and the other is retired.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from warden.core.api import SIGNING_ALGS
from warden.core.clock import Clock
from warden.core.keys import KeyState, SigningKey, plan_rotation, plan_scheduled, removable_keys
from warden.jose import (
    CompactSigner,
    PrivateKey,
    compact_signer,
    encode_header,
    generate_private_key,
    public_jwk,
)
from warden.services.audit import AuditSink
from warden.services.kek import KeyMaterial
from warden.storage.contract import Store

__all__ = ["Keyring", "Signer", "signers_from_keys"]


@dataclass(frozen=True, slots=True)
class Signer:
    """An active key ready to sign: the JWS header segment is encoded once, and the key is checked
    against its algorithm once (`compact`), not on every token."""

    kid: str
    alg: str
    key: PrivateKey
    header_segment: bytes
    compact: CompactSigner = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compact", compact_signer(self.header_segment, self.key, self.alg))


def _new_kid(alg: str) -> str:
    return f"{alg.lower()}-{secrets.token_hex(8)}"


def _newest_active(keys: Iterable[SigningKey], alg: str) -> SigningKey | None:
    actives = [k for k in keys if k.alg == alg and k.state is KeyState.ACTIVE]
    return max(actives, key=lambda k: (k.activated_at or k.created_at, k.kid)) if actives else None


def signers_from_keys(keys: list[SigningKey], material: KeyMaterial) -> dict[str, Signer]:
    out: dict[str, Signer] = {}
    for alg in SIGNING_ALGS:
        key = _newest_active(keys, alg)
        if key is not None:
            header = encode_header({"alg": alg, "typ": "at+jwt", "kid": key.kid})
            out[alg] = Signer(key.kid, alg, material.decrypt_private_key(key.kid, key.encrypted_private_key), header)
    return out


class Keyring:
    def __init__(self, store: Store, material: KeyMaterial, clock: Clock, audit: AuditSink) -> None:
        self._store = store
        self._material = material
        self._clock = clock
        self._audit = audit

    def _create(self, alg: str, state: KeyState) -> SigningKey:
        kid = _new_kid(alg)
        private = generate_private_key(alg)
        now = self._clock.now()
        key = SigningKey(kid=kid, alg=alg, state=state, public_jwk=public_jwk(private, kid=kid, alg=alg),
                         encrypted_private_key=self._material.encrypt_private_key(kid, private),
                         created_at=now, activated_at=now if state is KeyState.ACTIVE else None)
        self._store.add_key(key)
        self._audit.emit("key.created", actor="system", kid=kid, alg=alg, state=state.value)
        return key

    def ensure_keys(self, algs: Iterable[str] = SIGNING_ALGS) -> None:
        """Give every algorithm an active and a next key (first start, or after a restore)."""
        keys = self._store.load_keys()
        for alg in algs:
            if _newest_active(keys, alg) is None:
                self._create(alg, KeyState.ACTIVE)
            if not any(k.alg == alg and k.state is KeyState.NEXT for k in keys):
                self._create(alg, KeyState.NEXT)

    def rotate(self, algs: Iterable[str] = SIGNING_ALGS, *, actor: str = "operator") -> list[str]:
        """On-demand rotation; returns the kids that became active."""
        activated: list[str] = []
        for alg in algs:
            plan = plan_rotation(self._store.load_keys(), alg)
            activated += self._apply(plan.alg, plan.activate, plan.retire, actor)
        return activated

    def _apply(self, alg: str, activate: str | None, retire: tuple[str, ...], actor: str) -> list[str]:
        now = self._clock.now()
        if activate is None:
            self._create(alg, KeyState.ACTIVE)
            new_active = None
        else:
            expect = {activate: KeyState.NEXT, **{kid: KeyState.ACTIVE for kid in retire}}
            transitions = [(activate, KeyState.ACTIVE, now)] + [(kid, KeyState.RETIRED, now) for kid in retire]
            if not self._store.set_key_states(transitions, expect=expect):
                return []  # another process rotated first
            new_active = activate
        if activate is not None:
            for kid in retire:
                self._audit.emit("key.retired", actor=actor, kid=kid, alg=alg)
            self._audit.emit("key.activated", actor=actor, kid=activate, alg=alg)
        self._create(alg, KeyState.NEXT)
        return [new_active] if new_active else []

    def maintain(self, *, interval: float, publish_lead: float, max_token_ttl: float) -> None:
        """Scheduled rotation, duplicate-active cleanup and removal of expired retired keys."""
        keys = self._store.load_keys()
        now = self._clock.now()
        for alg in SIGNING_ALGS:
            newest = _newest_active(keys, alg)
            extra = [k.kid for k in keys if k.alg == alg and k.state is KeyState.ACTIVE
                     and newest is not None and k.kid != newest.kid]
            if extra:
                self._store.set_key_states([(kid, KeyState.RETIRED, now) for kid in extra],
                                           expect={kid: KeyState.ACTIVE for kid in extra})
                keys = self._store.load_keys()
            plan = plan_scheduled(keys, alg, now, interval=interval, publish_lead=publish_lead)
            if plan is not None:
                if plan.activate is None and not plan.retire and plan.create_next:
                    self._create(alg, KeyState.NEXT)
                else:
                    self._apply(alg, plan.activate, plan.retire, "schedule")
                keys = self._store.load_keys()
        gone = removable_keys(keys, now, max_token_ttl=max_token_ttl)
        if gone:
            self._store.delete_keys(gone)
            for kid in gone:
                self._audit.emit("key.removed", actor="schedule", kid=kid)
