"""Signing keys: creation, rotation (on demand and on schedule), removal, and signers.

The lifecycle rules are in `warden.core.keys`; this module applies them to the
store. Private keys live in a key backend (`services.key_backends`: the database,
encrypted, or a PKCS#11 token); the lifecycle is the same for every backend.
Every algorithm an API may choose keeps one `active` key and one `next`
key published ahead of use. Several server processes may run maintenance at
once: state changes are compare-and-set, and if two processes ever both create
an active key the newest wins deterministically and the other is retired.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from warden.core.api import SIGNING_ALGS
from warden.core.clock import Clock
from warden.core.keys import KeyState, SigningKey, plan_rotation, plan_scheduled, removable_keys
from warden.errors import ConfigError, WardenError
from warden.jose import DelegatedSigner, encode_header
from warden.services.audit import AuditSink
from warden.services.kek import KeyMaterial
from warden.services.key_backends import DatabaseKeys, KeyBackends, SignFunction
from warden.storage.contract import Store

log = logging.getLogger("warden.server")

__all__ = ["Keyring", "Signer", "check_backend_keys", "signers_from_keys"]


@dataclass(frozen=True, slots=True)
class Signer:
    """An active key ready to sign: the JWS header segment is encoded once, and the key is resolved
    in its backend (and checked against its algorithm) once, not on every token."""

    kid: str
    alg: str
    sign_input: SignFunction = field(repr=False)
    header_segment: bytes
    compact: DelegatedSigner = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compact", DelegatedSigner(self.header_segment, self.sign_input))

    def sign_jws(self, header_segment: bytes, payload: bytes) -> str:
        """Sign `payload` under another header (a status list token) with the same key."""
        return DelegatedSigner(header_segment, self.sign_input).sign(payload)


def _new_kid(alg: str) -> str:
    return f"{alg.lower()}-{secrets.token_hex(8)}"


def _newest_active(keys: Iterable[SigningKey], alg: str) -> SigningKey | None:
    actives = [k for k in keys if k.alg == alg and k.state is KeyState.ACTIVE]
    return max(actives, key=lambda k: (k.activated_at or k.created_at, k.kid)) if actives else None


def signers_from_keys(keys: list[SigningKey], backends: KeyBackends) -> dict[str, Signer]:
    """The signer of each algorithm's active key, each resolved in the backend that holds it."""
    out: dict[str, Signer] = {}
    for alg in SIGNING_ALGS:
        key = _newest_active(keys, alg)
        if key is not None:
            header = encode_header({"alg": alg, "typ": "at+jwt", "kid": key.kid})
            ref = key.encrypted_private_key
            out[alg] = Signer(key.kid, alg, backends.for_ref(key.kid, ref).sign(key.kid, alg, ref), header)
    return out


def check_backend_keys(keys: list[SigningKey], backends: KeyBackends) -> None:
    """Raise ConfigError unless every key's backend holds it and its public half is the published one
    (a re-initialised token, or another token with the same label, would sign tokens nobody can verify)."""
    for key in keys:
        ref = key.encrypted_private_key
        held = backends.for_ref(key.kid, ref).public_jwk(key.kid, key.alg, ref)
        if {k: v for k, v in held.items() if k not in ("use", "alg", "kid")} != \
                {k: v for k, v in key.public_jwk.items() if k not in ("use", "alg", "kid")}:
            raise ConfigError(f"signing key {key.kid}: the key backend holds a different key than the one published")


class Keyring:
    def __init__(self, store: Store, material: KeyMaterial, clock: Clock, audit: AuditSink,
                 backends: KeyBackends | None = None) -> None:
        """`backends` says where new keys are made (default: the database, under `material`)."""
        self._store = store
        self._backends = backends or KeyBackends(DatabaseKeys(material))
        self._clock = clock
        self._audit = audit

    def _create(self, alg: str, state: KeyState) -> SigningKey:
        kid = _new_kid(alg)
        backend = self._backends.primary
        made = backend.generate(kid, alg)
        now = self._clock.now()
        key = SigningKey(kid=kid, alg=alg, state=state, public_jwk=made.public_jwk, encrypted_private_key=made.ref,
                         created_at=now, activated_at=now if state is KeyState.ACTIVE else None)
        self._store.add_key(key)
        self._audit.emit("key.created", actor="system", kid=kid, alg=alg, state=state.value, backend=backend.name)
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
            refs = {k.kid: k.encrypted_private_key for k in keys}
            for kid in gone:
                self._audit.emit("key.removed", actor="schedule", kid=kid)
                try:
                    self._backends.for_ref(kid, refs[kid]).destroy(kid, refs[kid])
                except WardenError as exc:  # the row is gone: the key signs nothing more; say it lingers
                    log.warning("removed signing key %s could not be destroyed in its backend: %s", kid, exc)
