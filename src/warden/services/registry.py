"""The per-process cache of everything the token path reads.

Clients (with grants and secrets), APIs, signing keys and revocations are loaded
once and then kept current by polling the store's change log, so a change made
by any process or node is honoured here within `poll_interval` plus one query.
The hot path only reads dictionaries; it never touches the database.

PostgreSQL may commit change-log rows out of sequence order, so each poll looks
back a few sequence numbers and skips those it has already applied.

Clients are held in a bounded cache (`registry.cache_size`, see `RegistrySettings`):

- A registry that fits is loaded whole at start-up (`complete`): an id that is not
  cached does not exist, as before, and nothing on the token path queries the store.
- A larger one is held in part: the clients in use, least recently used evicted. A
  client that is not cached is loaded on its first request (`client`): concurrent
  misses are gathered into one indexed query (`Store.load_client_records`), one
  request per id waits on it, and ids the store does not have are remembered for
  `negative_ttl` seconds (at most `negative_cache_size` of them), so repeating an
  unknown id costs nothing. Ids looked up in the store are also budgeted
  (`miss_rate` per second, shared with the server's other workers through its rate
  limiter); beyond the budget a request is answered 503 `temporarily_unavailable`
  with `Retry-After`, so a spray of made-up ids cannot become database load.
- The change log keeps the partial cache current without scanning it: a change
  reloads the entry if it is cached (one query for every changed client of a poll)
  and forgets the id's negative entry, so a client created, rotated, disabled or
  deleted anywhere is seen here after the next poll. A load that raced with a
  change of its client is answered but not cached.
- Workload identities are found by (issuer, subject): from an in-memory index when
  the registry is complete, else from the store's `federated_identities` index
  (`Store.load_federated_client_ids`), with the answers cached until a client
  change could alter them.
- Secret-age gauges (`observe` in the runtime) cover the cached clients only.
  A registry that grows past `cache_size` at runtime (clients created) turns partial
  at its first eviction.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable

from warden.core.api import Api
from warden.core.client import Grant, validate_client_id
from warden.core.keys import KeyState, SigningKey
from warden.core.revocation import RevokedToken
from warden.core.secrets import ClientSecret
from warden.jose import PublicKey, load_public_jwk
from warden.protocol.errors import TemporarilyUnavailable
from warden.services.client_cache import AbsentClients, ClientCache
from warden.services.kek import KeyMaterial
from warden.services.key_backends import DatabaseKeys, KeyBackends
from warden.services.keyring import Signer, signers_from_keys
from warden.services.ratelimit import InProcessRateLimiter, RateLimiter
from warden.storage.contract import ChangeKind, ClientRecord, Store

__all__ = ["ClientEntry", "Registry"]

_LOOKBACK = 64
_BATCH = 256  # client ids per miss query
_FEDERATED_CACHE = 4096  # (issuer, subject) answers held by a partial registry
_MISS_KEY = "registry:store-lookups"

ClientEntry = ClientRecord  # what the token path reads for a client: the client, its grants and secrets


class Registry:
    def __init__(self, store: Store, material: KeyMaterial, key_backends: KeyBackends | None = None, *,
                 cache_size: int = 100_000,
                 negative_cache_size: int = 10_000, negative_ttl: float = 10.0, miss_rate: float = 1000.0,
                 miss_limiter: RateLimiter | None = None, clock: Callable[[], float] = time.time,
                 on_store_lookup: Callable[[int], None] | None = None) -> None:
        """`miss_limiter` budgets store lookups (`miss_rate` ids per second, as many at once);
        `on_store_lookup(ids)` is called for each miss query, for a metric."""
        self._store = store
        self._material = material
        self._key_backends = key_backends or KeyBackends(DatabaseKeys(material))
        self.clients: ClientCache[ClientEntry] = ClientCache(cache_size)
        self.complete = True  # every client is cached: a miss means the client does not exist
        self.absent = AbsentClients(negative_cache_size, negative_ttl)
        self._miss_rate = miss_rate
        self._miss_limiter = miss_limiter or InProcessRateLimiter()
        self._clock = clock
        self._on_store_lookup = on_store_lookup
        self.apis: dict[str, Api] = {}
        self.revoked: dict[str, RevokedToken] = {}
        self.keys: list[SigningKey] = []
        self.signers: dict[str, Signer] = {}
        self.verification_keys: dict[str, tuple[str, PublicKey]] = {}  # kid -> (alg, key)
        self.jwks: dict[str, list[dict[str, str]]] = {"keys": []}
        # (issuer, subject) -> client ids: every identity when complete, else the answers cached so far.
        self.federated: dict[tuple[str, str], frozenset[str]] = {}
        self.max_token_ttl = 900
        # Values readers derive from the above (token decisions), emptied whenever anything changes.
        self.derived: dict[object, object] = {}
        self.seq = 0
        self._applied: deque[int] = deque(maxlen=4 * _LOOKBACK)
        self.loaded_at = 0.0
        self.refreshed_at = 0.0  # last successful poll (monotonic)
        self._lock = threading.Lock()
        # Miss path: `_epoch` counts applied client changes, `_touched` says when each id last changed,
        # so a load that started before a change of its client is not cached. Loop-side state below.
        self._epoch = 0
        self._touched: dict[str, int] = {}
        self._loads_in_flight = 0
        self._federated_epoch = 0
        self._waiting: dict[str, asyncio.Future[ClientEntry | None]] = {}
        self._queue: list[str] = []
        self._loader: asyncio.Task[None] | None = None

    # loading -----------------------------------------------------------------
    def load(self, now: float) -> None:
        with self._lock:
            seq = self._store.latest_change()
            capacity = self.clients.capacity
            if self._store.count_clients(limit=capacity + 1) <= capacity:
                grants: dict[str, list[Grant]] = {}
                for grant in self._store.load_grants():
                    grants.setdefault(grant.client_id, []).append(grant)
                secrets: dict[str, list[ClientSecret]] = {}
                for secret in self._store.load_secrets():
                    secrets.setdefault(secret.client_id, []).append(secret)
                entries = {c.client_id: ClientEntry(c, tuple(grants.get(c.client_id, ())),
                                                    tuple(secrets.get(c.client_id, ())))
                           for c in self._store.load_clients()}
                self.complete = self.clients.replace(entries) == 0
            else:  # held in part: clients are loaded as they are asked for
                self.clients.replace({})
                self.complete = False
            self.absent.clear()
            self._reindex_federated()
            self.apis = {a.identifier: a for a in self._store.load_apis()}
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

    def _reindex_federated(self) -> None:
        """Complete: index every cached client's workload identities. Partial: start the answers over."""
        self._federated_epoch += 1
        if not self.complete:
            self.federated = {}
            return
        index: dict[tuple[str, str], set[str]] = {}
        for entry in self.clients.values():
            for identity in entry.client.metadata.federated:
                index.setdefault((identity.issuer, identity.subject), set()).add(entry.client.client_id)
        self.federated = {k: frozenset(v) for k, v in index.items()}

    def _apply_client_changes(self, client_ids: list[str]) -> None:
        """Bring the cached clients named by the change log up to date (called under the lock)."""
        for client_id in client_ids:
            self._epoch += 1
            self._touched[client_id] = self._epoch
            self.absent.discard(client_id)
        # Complete: every changed client is (re)loaded. Partial: only those cached; others load when asked.
        wanted = client_ids if self.complete else [cid for cid in client_ids if cid in self.clients]
        olds = {cid: self.clients.peek(cid) for cid in client_ids}
        records = {r.client.client_id: r for r in self._store.load_client_records(wanted)} if wanted else {}
        evicted = 0
        for client_id in wanted:
            record = records.get(client_id)
            if record is None:
                self.clients.pop(client_id)
            else:
                evicted += self.clients.put(client_id, record)
        if evicted:  # grew past cache_size: from now on the cache holds part of the registry
            self.complete = False
            self._reindex_federated()
            return
        federated = [cid for cid in client_ids
                     if (olds[cid] is not None and olds[cid].client.metadata.federated)  # type: ignore[union-attr]
                     or (cid in records and records[cid].client.metadata.federated)]
        if self.complete:
            if federated:
                self._reindex_federated()
        elif self.federated:
            # A cached answer can change only by the changed client: drop those naming it and those for
            # its new identities; an uncached client's old identities are unknown, so then start over.
            if any(cid not in records and olds[cid] is None for cid in client_ids):
                self._reindex_federated()
            else:
                keys = {(f.issuer, f.subject) for cid in client_ids if cid in records
                        for f in records[cid].client.metadata.federated}
                self.federated = {k: v for k, v in self.federated.items()
                                  if k not in keys and not v.intersection(client_ids)}
                self._federated_epoch += 1
        if not self._loads_in_flight:
            self._touched.clear()

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
            changed_clients: dict[str, None] = {}  # in order, once each
            for change in fresh:
                if change.kind is ChangeKind.CLIENT:
                    changed_clients[change.key] = None
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
            if changed_clients:
                self._apply_client_changes(list(changed_clients))
            self._applied.extend(c.seq for c in fresh)
            if keys_changed:
                self._load_keys()
            # Advance only once everything is applied: readers of `seq` may rely on it.
            self.seq = max([self.seq, *(c.seq for c in fresh)])
            if fresh:
                self.derived = {}
            self.refreshed_at = time.monotonic()
            return len(fresh)

    # the miss path (a partial registry) -----------------------------------------
    def is_known_absent(self, client_id: str) -> bool:
        """Whether a client that is not cached certainly does not exist, so no store lookup is due."""
        return self.complete or self.absent.contains(client_id, self._clock()) or not _is_client_id(client_id)

    async def client(self, client_id: str) -> ClientEntry | None:
        """The client's entry, loaded from the store on a miss; None if there is no such client.

        Raises TemporarilyUnavailable (503) beyond the lookup budget and StorageError when the store fails."""
        entry = self.clients.get(client_id)
        if entry is not None or self.is_known_absent(client_id):
            return entry
        waiting = self._waiting.get(client_id)
        if waiting is None:  # the first request for this id; later ones wait on the same lookup
            self._admit()
            waiting = asyncio.get_running_loop().create_future()
            waiting.add_done_callback(_retrieved)
            self._waiting[client_id] = waiting
            self._queue.append(client_id)
            if self._loader is None or self._loader.done():
                self._loader = asyncio.create_task(self._load_queued())
        return await asyncio.shield(waiting)

    def client_blocking(self, client_id: str) -> ClientEntry | None:
        """`client` for synchronous callers (run it in a thread where the event loop must not wait)."""
        entry = self.clients.get(client_id)
        if entry is not None or self.is_known_absent(client_id):
            return entry
        self._admit()
        return self._load_missing([client_id]).get(client_id)

    async def federated_clients(self, issuer: str, subject: str) -> frozenset[str]:
        """Ids of the clients bound to the workload identity (`issuer`, `subject`)."""
        found = self.federated.get((issuer, subject))
        if found is not None or self.complete:
            return found or frozenset()
        self._admit()
        return await asyncio.to_thread(self._load_federated, issuer, subject)

    def _admit(self) -> None:
        burst = max(1.0, self._miss_rate)
        if self._miss_limiter.take(_MISS_KEY, self._miss_rate, burst, self._clock()) > 0:
            raise TemporarilyUnavailable("too many clients to look up at once, retry shortly",
                                         reason="registry_busy", retry_after=1)

    async def _load_queued(self) -> None:
        while self._queue:
            ids, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
            try:
                found = await asyncio.to_thread(self._load_missing, ids)
            except Exception as exc:  # every waiter gets the store's error (a 503), none waits forever
                for client_id in ids:
                    waiting = self._waiting.pop(client_id, None)
                    if waiting is not None and not waiting.done():
                        waiting.set_exception(exc)
                continue
            for client_id in ids:
                waiting = self._waiting.pop(client_id, None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(found.get(client_id))

    def _load_missing(self, client_ids: list[str]) -> dict[str, ClientEntry]:
        """One store query for `client_ids`; cache what it finds and remember what it does not."""
        with self._lock:
            start = self._epoch
            self._loads_in_flight += 1
        try:
            if self._on_store_lookup is not None:
                self._on_store_lookup(len(client_ids))
            found = {r.client.client_id: r for r in self._store.load_client_records(client_ids)}
        except BaseException:
            with self._lock:
                self._loads_in_flight -= 1
            raise
        with self._lock:  # still counted in flight here, so no poll forgets what `_touched` says meanwhile
            self._loads_in_flight -= 1
            now = self._clock()
            for client_id in client_ids:
                if self._touched.get(client_id, 0) > start:
                    continue  # changed while we read: answer with what we read, but do not keep it
                record = found.get(client_id)
                if record is None:
                    self.absent.add(client_id, now)
                else:
                    self.clients.put(client_id, record)
            if not self._loads_in_flight:
                self._touched.clear()
        return found

    def _load_federated(self, issuer: str, subject: str) -> frozenset[str]:
        with self._lock:
            epoch = self._federated_epoch
        if self._on_store_lookup is not None:
            self._on_store_lookup(1)
        ids = frozenset(self._store.load_federated_client_ids(issuer, subject))
        with self._lock:
            if epoch == self._federated_epoch and not self.complete:  # no client changed meanwhile
                if len(self.federated) >= _FEDERATED_CACHE:
                    self.federated = {}
                self.federated[(issuer, subject)] = ids
        return ids

    def add_revoked(self, revoked: RevokedToken) -> None:
        """Honour a revocation this process has just stored, before the change log brings it back."""
        with self._lock:
            self.revoked[revoked.jti] = revoked

    def purge_expired_revocations(self, now: float) -> None:
        with self._lock:  # a revocation may be added meanwhile; iterating then would fail
            for jti in [j for j, r in self.revoked.items() if r.exp <= now]:
                self.revoked.pop(jti, None)


def _is_client_id(client_id: str) -> bool:
    try:
        validate_client_id(client_id)  # no client has another id, so such ids cost no lookup
    except ValueError:
        return False
    return True


def _retrieved(future: asyncio.Future[ClientEntry | None]) -> None:
    """Mark a lookup's error as seen: its waiters may all have gone (cancelled requests)."""
    if not future.cancelled():
        future.exception()
