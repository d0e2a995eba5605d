"""The per-process cache of everything the token path reads.

Clients (with grants and secrets), APIs, signing keys and revocations are loaded
once and then kept current by polling the store's change log, so a change made
by any process or node is honoured here within `poll_interval` plus one query.
The hot path only reads dictionaries; it never touches the database.

PostgreSQL may commit change-log rows out of sequence order, so each poll looks
back a few sequence numbers and skips those it has already applied.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from warden.core.api import Api
from warden.core.client import Client, Grant
from warden.core.keys import KeyState, SigningKey
from warden.core.revocation import RevokedToken
from warden.core.secrets import ClientSecret
from warden.jose import PublicKey, load_public_jwk
from warden.services.kek import KeyMaterial
from warden.services.key_backends import DatabaseKeys, KeyBackends
from warden.services.keyring import Signer, signers_from_keys
from warden.storage.contract import ChangeKind, Store

__all__ = ["ClientEntry", "Registry"]

_LOOKBACK = 64


@dataclass(frozen=True, slots=True)
class ClientEntry:
    client: Client
    grants: tuple[Grant, ...]
    secrets: tuple[ClientSecret, ...]


class Registry:
    def __init__(self, store: Store, material: KeyMaterial, key_backends: KeyBackends | None = None) -> None:
        self._store = store
        self._key_backends = key_backends or KeyBackends(DatabaseKeys(material))
        self.clients: dict[str, ClientEntry] = {}
        self.apis: dict[str, Api] = {}
        self.revoked: dict[str, RevokedToken] = {}
        self.keys: list[SigningKey] = []
        self.signers: dict[str, Signer] = {}
        self.verification_keys: dict[str, tuple[str, PublicKey]] = {}  # kid -> (alg, key)
        self.jwks: dict[str, list[dict[str, str]]] = {"keys": []}
        self.federated: dict[tuple[str, str], frozenset[str]] = {}  # (issuer, subject) -> client ids
        self.max_token_ttl = 900
        # Values readers derive from the above (token decisions), emptied whenever anything changes.
        self.derived: dict[object, object] = {}
        self.seq = 0
        self._applied: deque[int] = deque(maxlen=4 * _LOOKBACK)
        self.loaded_at = 0.0
        self.refreshed_at = 0.0  # last successful poll (monotonic)
        self._lock = threading.Lock()

    # loading -----------------------------------------------------------------
    def load(self, now: float) -> None:
        with self._lock:
            seq = self._store.latest_change()
            grants: dict[str, list[Grant]] = {}
            for grant in self._store.load_grants():
                grants.setdefault(grant.client_id, []).append(grant)
            secrets: dict[str, list[ClientSecret]] = {}
            for secret in self._store.load_secrets():
                secrets.setdefault(secret.client_id, []).append(secret)
            self.clients = {c.client_id: ClientEntry(c, tuple(grants.get(c.client_id, ())),
                                                     tuple(secrets.get(c.client_id, ())))
                            for c in self._store.load_clients()}
            self.apis = {a.identifier: a for a in self._store.load_apis()}
            self._index_federated()
            self.revoked = {r.jti: r for r in self._store.load_revoked_tokens(now)}
            self._load_keys()
            self._update_ttl()
            self.seq = seq
            self._applied.clear()
            self._applied.extend(range(max(1, seq - _LOOKBACK + 1), seq + 1))
            self.loaded_at = self.refreshed_at = time.monotonic()
            self.derived = {}

    def _load_keys(self) -> None:
        keys = self._store.load_keys()
        self.keys = keys
        self.signers = signers_from_keys(keys, self._key_backends)
        self.verification_keys = {k.kid: (k.alg, load_public_jwk(k.public_jwk)) for k in keys}
        # Publish next, active and retired keys: next ahead of use, retired until its tokens expire.
        order = {KeyState.ACTIVE: 0, KeyState.NEXT: 1, KeyState.RETIRED: 2}
        self.jwks = {"keys": [k.public_jwk for k in sorted(keys, key=lambda k: (order[k.state], k.alg, k.kid))]}

    def _load_client(self, client_id: str) -> None:
        client = self._store.load_client(client_id)
        old = self.clients.get(client_id)
        if client is None:
            self.clients.pop(client_id, None)
        else:
            self.clients[client_id] = ClientEntry(client, tuple(self._store.load_grants(client_id)),
                                                  tuple(self._store.load_secrets(client_id)))
        if (old and old.client.metadata.federated) or (client and client.metadata.federated):
            self._index_federated()

    def _index_federated(self) -> None:
        """Workload identities are looked up by (issuer, subject); rebuilt when a federated client changes."""
        index: dict[tuple[str, str], set[str]] = {}
        for entry in self.clients.values():
            for identity in entry.client.metadata.federated:
                index.setdefault((identity.issuer, identity.subject), set()).add(entry.client.client_id)
        self.federated = {k: frozenset(v) for k, v in index.items()}

    def _update_ttl(self) -> None:
        self.max_token_ttl = max((a.token_ttl for a in self.apis.values()), default=900)

    def refresh(self, now: float) -> int:
        """Apply changes logged since the last poll; return how many were applied."""
        with self._lock:
            changes = self._store.changes_since(max(0, self.seq - _LOOKBACK), limit=5000)
            fresh = [c for c in changes if c.seq not in self._applied]
            if fresh:
                self.derived = {}  # readers recompute from here on (and again once all is applied)
            keys_changed = False
            for change in fresh:
                if change.kind is ChangeKind.CLIENT:
                    self._load_client(change.key)
                elif change.kind is ChangeKind.API:
                    api = self._store.load_api(change.key)
                    if api is None:
                        self.apis.pop(change.key, None)
                    else:
                        self.apis[change.key] = api
                    self._update_ttl()
                elif change.kind is ChangeKind.KEY:
                    keys_changed = True
                elif change.kind is ChangeKind.REVOCATION:
                    for revoked in self._store.load_revoked_tokens(now, jti=change.key):
                        self.revoked[revoked.jti] = revoked
                self._applied.append(change.seq)
            if keys_changed:
                self._load_keys()
            # Advance only once everything is applied: readers of `seq` may rely on it.
            self.seq = max([self.seq, *(c.seq for c in fresh)])
            if fresh:
                self.derived = {}
            self.refreshed_at = time.monotonic()
            return len(fresh)

    def add_revoked(self, revoked: RevokedToken) -> None:
        """Honour a revocation this process has just stored, before the change log brings it back."""
        with self._lock:
            self.revoked[revoked.jti] = revoked

    def purge_expired_revocations(self, now: float) -> None:
        with self._lock:  # a revocation may be added meanwhile; iterating then would fail
            for jti in [j for j, r in self.revoked.items() if r.exp <= now]:
                self.revoked.pop(jti, None)
