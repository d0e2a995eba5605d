"""In-memory store for unit tests and throwaway servers; same contract as the SQL store."""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from warden.core.api import Api
from warden.core.client import Client, Grant
from warden.core.keys import KeyState, SigningKey
from warden.core.registration import ClientRegistration, RegistrationToken
from warden.core.revocation import RevokedToken, StatusBlock
from warden.core.secrets import ClientSecret
from warden.errors import Conflict, NotFound
from warden.storage.contract import Change, ChangeKind, ClientRecord

__all__ = ["MemoryStore"]


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._apis: dict[str, Api] = {}
        self._clients: dict[str, Client] = {}
        self._grants: dict[str, list[Grant]] = {}
        self._secrets: dict[str, ClientSecret] = {}
        self._keys: dict[str, SigningKey] = {}
        self._revoked: dict[str, RevokedToken] = {}
        self._changes: list[Change] = []
        self._assertions: dict[str, float] = {}
        self._status_lists: dict[int, list[float]] = {}  # list_id -> [next_start, reusable_at]
        self._status_blocks: dict[int, list[StatusBlock]] = {}
        self._cursors: dict[str, int] = {}
        self._registration_tokens: dict[str, RegistrationToken] = {}
        self._registrations: dict[str, ClientRegistration] = {}
        self._depth = 0  # transaction() nesting of the thread holding the lock

    def _log(self, kind: ChangeKind, key: str) -> None:
        seq = self._changes[-1].seq + 1 if self._changes else 1
        self._changes.append(Change(seq, kind, key, time.time()))

    def migrate(self) -> None:
        pass

    def ping(self) -> None:
        pass

    def close(self) -> None:
        pass

    _STATE = ("_apis", "_clients", "_grants", "_secrets", "_keys", "_revoked", "_changes", "_assertions",
              "_status_lists", "_status_blocks", "_cursors", "_registration_tokens", "_registrations")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Holds the lock for the block (other writers wait) and restores a snapshot if it raises.
        Readers in other threads that do not take the lock may see the block's writes early."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            snapshot = {name: copy.deepcopy(getattr(self, name)) for name in self._STATE}
            self._depth = 1
            try:
                yield
            except BaseException:
                for name, value in snapshot.items():
                    setattr(self, name, value)
                raise
            finally:
                self._depth = 0

    # APIs
    def save_api(self, api: Api) -> None:
        with self._lock:
            old = self._apis.get(api.identifier)
            if old is not None:
                api = dataclasses.replace(api, created_at=old.created_at)
            self._apis[api.identifier] = api
            self._log(ChangeKind.API, api.identifier)

    def load_api(self, identifier: str) -> Api | None:
        return self._apis.get(identifier)

    def load_apis(self) -> list[Api]:
        return sorted(self._apis.values(), key=lambda a: a.identifier)

    def delete_api(self, identifier: str) -> None:
        with self._lock:
            if identifier not in self._apis:
                raise NotFound(f"no API {identifier}")
            if any(g.api == identifier for gs in self._grants.values() for g in gs):
                raise Conflict(f"API {identifier} is still granted to clients")
            del self._apis[identifier]
            self._log(ChangeKind.API, identifier)

    # clients
    def create_client(self, client: Client, grants: Sequence[Grant], secrets: Sequence[ClientSecret]) -> None:
        with self._lock:
            self._create_client(client, grants, secrets)

    def _create_client(self, client: Client, grants: Sequence[Grant], secrets: Sequence[ClientSecret]) -> None:
        with self._lock:
            if client.client_id in self._clients:
                raise Conflict(f"client {client.client_id} already exists")
            self._check_grants(grants)
            self._clients[client.client_id] = client
            self._grants[client.client_id] = list(grants)
            if any(secret.secret_id in self._secrets for secret in secrets):
                raise Conflict("duplicate secret id")
            for secret in secrets:
                self._secrets[secret.secret_id] = secret
            self._log(ChangeKind.CLIENT, client.client_id)

    def _check_grants(self, grants: Sequence[Grant]) -> None:
        if len({g.api for g in grants}) != len(grants) or len({g.position for g in grants}) != len(grants):
            raise Conflict("duplicate grant")
        for grant in grants:
            if grant.api not in self._apis:
                raise NotFound(f"no API {grant.api}")

    def update_client(self, client: Client) -> None:
        with self._lock:
            old = self._clients.get(client.client_id)
            if old is None:
                raise NotFound(f"no client {client.client_id}")
            self._clients[client.client_id] = dataclasses.replace(client, created_at=old.created_at)
            self._log(ChangeKind.CLIENT, client.client_id)

    def delete_client(self, client_id: str) -> None:
        with self._lock:
            if self._clients.pop(client_id, None) is None:
                raise NotFound(f"no client {client_id}")
            self._grants.pop(client_id, None)
            self._registrations.pop(client_id, None)
            for sid in [s.secret_id for s in self._secrets.values() if s.client_id == client_id]:
                del self._secrets[sid]
            self._log(ChangeKind.CLIENT, client_id)

    def set_grants(self, client_id: str, grants: Sequence[Grant]) -> None:
        with self._lock:
            if client_id not in self._clients:
                raise NotFound(f"no client {client_id}")
            self._check_grants(grants)
            self._grants[client_id] = list(grants)
            self._log(ChangeKind.CLIENT, client_id)

    # dynamic registration
    def save_registration_token(self, token: RegistrationToken) -> None:
        with self._lock:
            if token.token_id in self._registration_tokens or any(
                    t.hash == token.hash for t in self._registration_tokens.values()):
                raise Conflict(f"registration token {token.token_id} exists")
            self._registration_tokens[token.token_id] = token

    def load_registration_token(self, token_hash: bytes) -> RegistrationToken | None:
        return next((t for t in self._registration_tokens.values() if t.hash == token_hash), None)

    def load_registration_tokens(self) -> list[RegistrationToken]:
        return sorted(self._registration_tokens.values(), key=lambda t: (t.created_at, t.token_id))

    def revoke_registration_token(self, token_id: str, at: float) -> None:
        with self._lock:
            token = self._registration_tokens.get(token_id)
            if token is None:
                raise NotFound(f"no registration token {token_id}")
            if token.revoked_at is None:
                self._registration_tokens[token_id] = dataclasses.replace(token, revoked_at=at)

    def register_client(self, token_id: str, now: float, client: Client, grants: Sequence[Grant],
                        secrets: Sequence[ClientSecret], registration: ClientRegistration) -> bool:
        with self._lock:
            token = self._registration_tokens.get(token_id)
            if token is None or token.state(now) != "active":
                return False
            self._create_client(client, grants, secrets)
            self._registration_tokens[token_id] = dataclasses.replace(token, uses=token.uses + 1)
            self._registrations[client.client_id] = registration
            return True

    def load_registration(self, client_id: str) -> ClientRegistration | None:
        return self._registrations.get(client_id)

    def load_client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def load_clients(self) -> list[Client]:
        return sorted(self._clients.values(), key=lambda c: c.client_id)

    def count_clients(self, limit: int | None = None) -> int:
        return len(self._clients) if limit is None else min(limit, len(self._clients))

    def load_client_records(self, client_ids: Sequence[str]) -> list[ClientRecord]:
        with self._lock:
            return [ClientRecord(self._clients[cid], tuple(self.load_grants(cid)), tuple(self.load_secrets(cid)))
                    for cid in sorted(set(client_ids)) if cid in self._clients]

    def create_clients(self, records: Sequence[ClientRecord]) -> None:
        with self._lock:
            ids = [r.client.client_id for r in records]
            if len(set(ids)) != len(ids):
                raise Conflict("a client id is listed twice")
            for r in records:
                if r.client.client_id in self._clients:
                    raise Conflict(f"client {r.client.client_id} already exists")
                self._check_grants(r.grants)
            secret_ids = [s.secret_id for r in records for s in r.secrets]
            if len(set(secret_ids)) != len(secret_ids) or any(sid in self._secrets for sid in secret_ids):
                raise Conflict("duplicate secret id")
            for r in records:
                self.create_client(r.client, r.grants, r.secrets)

    def load_federated_client_ids(self, issuer: str, subject: str) -> list[str]:
        with self._lock:
            return sorted(c.client_id for c in self._clients.values()
                          if any((f.issuer, f.subject) == (issuer, subject) for f in c.metadata.federated))

    def load_grants(self, client_id: str | None = None) -> list[Grant]:
        with self._lock:
            ids = [client_id] if client_id is not None else sorted(self._grants)
            return [g for cid in ids for g in sorted(self._grants.get(cid, []), key=lambda g: g.position)]

    # secrets
    def add_secret(self, secret: ClientSecret, *, expire_others_at: float | None = None) -> None:
        with self._lock:
            if secret.client_id not in self._clients:
                raise NotFound(f"no client {secret.client_id}")
            if expire_others_at is not None:
                for sid, other in list(self._secrets.items()):
                    if other.client_id == secret.client_id and (
                            other.expires_at is None or other.expires_at > expire_others_at):
                        self._secrets[sid] = dataclasses.replace(other, expires_at=expire_others_at)
            if secret.secret_id in self._secrets:
                raise Conflict("duplicate secret id")
            self._secrets[secret.secret_id] = secret
            self._log(ChangeKind.CLIENT, secret.client_id)

    def revoke_secret(self, client_id: str, secret_id: str, at: float) -> None:
        with self._lock:
            secret = self._secrets.get(secret_id)
            if secret is None or secret.client_id != client_id:
                raise NotFound(f"client {client_id} has no secret {secret_id}")
            if secret.revoked_at is None:
                self._secrets[secret_id] = dataclasses.replace(secret, revoked_at=at)
            self._log(ChangeKind.CLIENT, client_id)

    def load_secrets(self, client_id: str | None = None) -> list[ClientSecret]:
        with self._lock:
            return sorted((s for s in self._secrets.values() if client_id is None or s.client_id == client_id),
                          key=lambda s: (s.client_id, s.created_at, s.secret_id))

    def record_secret_use(self, uses: dict[str, float]) -> None:
        with self._lock:
            for sid, at in uses.items():
                secret = self._secrets.get(sid)
                if secret is not None and (secret.last_used_at or 0) < at:
                    self._secrets[sid] = dataclasses.replace(secret, last_used_at=at)

    # keys
    def add_key(self, key: SigningKey) -> None:
        with self._lock:
            if key.kid in self._keys:
                raise Conflict(f"key {key.kid} exists")
            self._keys[key.kid] = key
            self._log(ChangeKind.KEY, key.kid)

    def set_key_states(self, transitions: Iterable[tuple[str, KeyState, float]],
                       *, expect: dict[str, KeyState] | None = None) -> bool:
        with self._lock:
            for kid, state in (expect or {}).items():
                key = self._keys.get(kid)
                if key is None or key.state is not state:
                    return False
            transitions = list(transitions)
            for kid, _, _ in transitions:  # all or nothing
                if kid not in self._keys:
                    raise NotFound(f"no key {kid}")
            for kid, state, at in transitions:
                key = self._keys[kid]
                if state is KeyState.ACTIVE:
                    key = dataclasses.replace(key, state=state, activated_at=at)
                elif state is KeyState.RETIRED:
                    key = dataclasses.replace(key, state=state, retired_at=at)
                else:
                    key = dataclasses.replace(key, state=state)
                self._keys[kid] = key
                self._log(ChangeKind.KEY, kid)
            return True

    def delete_keys(self, kids: Iterable[str]) -> None:
        with self._lock:
            for kid in kids:
                if self._keys.pop(kid, None) is not None:
                    self._log(ChangeKind.KEY, kid)

    def load_keys(self) -> list[SigningKey]:
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.kid))

    # revocation
    def revoke_token(self, revoked: RevokedToken) -> None:
        with self._lock:
            if revoked.jti not in self._revoked:
                self._revoked[revoked.jti] = revoked
                self._log(ChangeKind.REVOCATION, revoked.jti)

    def load_revoked_tokens(self, now: float, jti: str | None = None) -> list[RevokedToken]:
        with self._lock:
            return [r for r in self._revoked.values() if r.exp > now and (jti is None or r.jti == jti)]

    def purge_revocations(self, now: float) -> int:
        with self._lock:
            gone = [j for j, r in self._revoked.items() if r.exp <= now]
            for jti in gone:
                del self._revoked[jti]
            return len(gone)

    # token status lists
    def reserve_status_block(self, client_id: str, size: int, now: float, reusable_at: float,
                             list_size: int) -> StatusBlock:
        return self.reserve_status_blocks([(client_id, size)], now, reusable_at, list_size)[0]

    def reserve_status_blocks(self, wants: Sequence[tuple[str, int]], now: float, reusable_at: float,
                              list_size: int) -> list[StatusBlock]:
        if any(not 0 < size <= list_size for _, size in wants):
            raise ValueError("block size must be between 1 and the list size")
        with self._lock:
            lists = self._status_lists
            out = []
            for client_id, size in wants:
                open_ = [i for i in sorted(lists) if lists[i][0] + size <= list_size]
                if open_:
                    list_id = open_[0]
                    start = int(lists[list_id][0])
                    lists[list_id] = [start + size, max(lists[list_id][1], reusable_at)]
                else:
                    list_id, start = max(lists, default=0) + 1, 0
                    lists[list_id] = [size, reusable_at]
                block = StatusBlock(list_id, start, size, client_id, now, reusable_at)
                self._status_blocks.setdefault(list_id, []).append(block)
                out.append(block)
            return out

    def load_status_marks(self, list_id: int, now: float) -> list[tuple[int, int]] | None:
        with self._lock:
            if list_id not in self._status_lists or self._status_lists[list_id][1] <= now:
                return None
            marks = []
            for b in self._status_blocks.get(list_id, ()):
                client = self._clients.get(b.client_id)
                if b.reusable_at > now and (client is None or (client.revoked_before is not None
                                                                and client.revoked_before >= b.reserved_at)):
                    marks.append((b.start, b.size))
            marks += [(r.status_idx, 1) for r in self._revoked.values()
                      if r.status_list == list_id and r.status_idx is not None and r.exp > now]
            return sorted(marks)

    def load_status_lists(self, now: float) -> list[int]:
        with self._lock:
            return sorted(i for i, (_, reusable_at) in self._status_lists.items() if reusable_at > now)

    def purge_status_blocks(self, now: float) -> int:
        with self._lock:
            gone = 0
            for list_id, blocks in self._status_blocks.items():
                live = [b for b in blocks if b.reusable_at > now]
                gone += len(blocks) - len(live)
                self._status_blocks[list_id] = live
            return gone

    # single-use assertions
    def use_assertion(self, key: str, exp: float) -> bool:
        with self._lock:
            if key in self._assertions:
                return False
            self._assertions[key] = exp
            return True

    def purge_assertions(self, now: float) -> int:
        with self._lock:
            gone = [k for k, exp in self._assertions.items() if exp <= now]
            for k in gone:
                del self._assertions[k]
            return len(gone)

    # change log
    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        with self._lock:
            return [c for c in self._changes if c.seq > seq][:limit]

    def latest_change(self) -> int:
        with self._lock:
            return self._changes[-1].seq if self._changes else 0

    def prune_changes(self, before: float) -> int:
        with self._lock:
            newest = self._changes[-1] if self._changes else None
            keep = [c for c in self._changes if c.at >= before or c is newest]  # never lose the latest seq
            removed = len(self._changes) - len(keep)
            self._changes = keep
            return removed

    # audit cursors
    def load_cursor(self, name: str) -> int:
        with self._lock:
            return self._cursors.get(name, 0)

    def save_cursor(self, name: str, seq: int) -> None:
        with self._lock:
            self._cursors[name] = seq
