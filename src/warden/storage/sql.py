"""The SQL store: `contract.Store` on SQLite and PostgreSQL with one code path.

Every mutation runs in one transaction that also appends its change-log rows.
On SQLite write transactions start with BEGIN IMMEDIATE, taking the write lock
before the first read, so check-then-write sequences (existence checks, the
compare-and-set of `set_key_states`) cannot interleave. On PostgreSQL the
compare-and-set locks the expected rows (SELECT ... FOR UPDATE), and appending to
the change log takes a transaction-scoped advisory lock, so sequence numbers
are committed in order and a reader that saw seq N never later finds a smaller
one appearing (which would make change-log cursors skip events).

Driver errors become `warden.errors`: unreachable or failing database ->
StorageUnavailable, constraint violations -> Conflict. Messages are one line and
never contain the connection password.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Row,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa
from sqlalchemy.dialects import postgresql, sqlite

from warden.core.api import Api
from warden.core.client import Client, Grant
from warden.core.keys import KeyState, SigningKey
from warden.core.registration import ClientRegistration, RegistrationToken
from warden.core.revocation import RevokedToken, StatusBlock
from warden.core.secrets import ClientSecret
from warden.errors import Conflict, NotFound, StorageError, StorageUnavailable
from warden.storage._rows import (
    api_from_row,
    client_from_row,
    client_values,
    join_scopes,
    key_from_row,
    policy_json,
    registration_from_row,
    registration_token_from_row,
    secret_from_row,
    secret_values,
    split_scopes,
)
from warden.storage.contract import Change, ChangeKind, ClientRecord
from warden.storage.migrations import upgrade_to_head
from warden.storage.schema import (
    apis,
    audit_cursors,
    change_log,
    client_registrations,
    client_secrets,
    clients,
    federated_identities,
    registration_tokens,
    revoked_tokens,
    signing_keys,
    status_blocks,
    status_lists,
    used_assertions,
)
from warden.storage.schema import grants as grants_table

__all__ = ["SqlStore"]

_STATUS_LOCK = 0x57534C31  # PostgreSQL advisory lock serialising status-block reservations across nodes

_CHANGE_LOG_LOCK = zlib.crc32(b"warden.change_log")
_BATCH = 5000  # rows per executemany in bulk writes, and ids per IN list


def _federated_rows(client: Client) -> list[dict[str, str]]:
    pairs = {(f.issuer, f.subject) for f in client.metadata.federated}
    return [{"issuer": i, "subject": s, "client_id": client.client_id} for i, s in sorted(pairs)]


class SqlStore:
    """`contract.Store` over a SQLAlchemy engine, which the store owns and disposes on `close`.

    Build the engine with `warden.storage.engine.build_engine` (or call `open_store`):
    on SQLite the store relies on its driver-level autocommit and pragmas.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._postgres = engine.dialect.name == "postgresql"
        url = engine.url
        host = f"{url.host or 'localhost'}:{url.port or 5432}"
        self._where = (f"SQLite database {url.database}" if self._sqlite
                       else f"PostgreSQL database {url.database or ''} at {host}")
        self._local = threading.local()  # .conn: the connection of this thread's transaction(), if any

    # plumbing -----------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sa.IntegrityError as exc:
            raise Conflict(f"the change conflicts with stored data: {self._reason(exc)}") from exc
        except (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError, sa.TimeoutError) as exc:
            raise StorageUnavailable(f"{self._where} is unavailable: {self._reason(exc)}") from exc
        except sa.DBAPIError as exc:
            raise StorageError(f"{self._where} failed: {self._reason(exc)}") from exc

    def _reason(self, exc: Exception) -> str:
        cause = exc.orig if isinstance(exc, sa.DBAPIError) and exc.orig is not None else exc
        lines = str(cause).strip().splitlines()
        reason = lines[0].strip() if lines else type(cause).__name__
        secrets = [self._engine.url.password, self._engine.url.query.get("password")]
        for secret in secrets:
            if isinstance(secret, str) and secret:
                reason = reason.replace(secret, "***")
        return reason[:300]

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Connection]:
        """One transaction, committed when the block ends without an exception.

        SQLite reads stay in driver autocommit: each is a single SELECT, and a read
        transaction would only pin an old WAL snapshot. Inside `transaction()` every call, read or
        write, runs on that transaction's connection and leaves the commit to it.
        """
        outer: Connection | None = getattr(self._local, "conn", None)
        if outer is not None:
            with self._errors():
                yield outer
            return
        with self._errors(), self._engine.connect() as conn:
            if write and self._sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
            conn.commit()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """See `contract.Store.transaction`. On SQLite it takes the write lock at once (BEGIN
        IMMEDIATE), so other writers wait for it (busy_timeout) rather than interleave; on
        PostgreSQL the change-log lock taken by the first write is held until the commit."""
        if getattr(self._local, "conn", None) is not None:
            yield  # joins the transaction already open on this thread
            return
        with self._errors(), self._engine.connect() as conn:
            if self._sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            self._local.conn = conn
            try:
                yield
            except BaseException:
                self._local.conn = None
                conn.rollback()
                raise
            self._local.conn = None
            conn.commit()

    def _log(self, conn: Connection, changes: Sequence[tuple[ChangeKind, str]]) -> None:
        """Append change rows; call it last in a transaction, so the lock it takes is the last one."""
        if not changes:
            return
        if self._postgres:
            # Held until commit: the next writer draws its sequence number after ours is visible.
            conn.execute(select(func.pg_advisory_xact_lock(_CHANGE_LOG_LOCK)))
        at = time.time()
        rows = [{"kind": kind.value, "key": key, "at": at} for kind, key in changes]
        conn.execute(insert(change_log), rows)

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """INSERT with ON CONFLICT support; both dialects spell it the same way."""
        return postgresql.insert(table) if self._postgres else sqlite.insert(table)

    # lifecycle ----------------------------------------------------------------
    def migrate(self) -> None:
        with self._errors():
            upgrade_to_head(self._engine)

    def ping(self) -> None:
        with self._transaction(write=False) as conn:
            conn.exec_driver_sql("SELECT 1")

    def _first(self, query: Executable) -> Row[Any] | None:
        """The first row `query` reads in a read-only transaction."""
        with self._transaction(write=False) as conn:
            return conn.execute(query).first()

    def _rows(self, query: Executable) -> list[Row[Any]]:
        """Every row `query` reads in a read-only transaction."""
        with self._transaction(write=False) as conn:
            return list(conn.execute(query))

    def close(self) -> None:
        self._engine.dispose()

    # APIs ---------------------------------------------------------------------
    def save_api(self, api: Api) -> None:
        values = {"identifier": api.identifier, "scopes": join_scopes(api.scopes), "token_ttl": api.token_ttl,
                  "alg": api.alg, "name": api.name, "created_at": api.created_at,
                  "dpop_required": api.dpop_required, "cert_bound": api.cert_bound, "tenant": api.tenant}
        stmt = self._insert(apis).values(values)
        stmt = stmt.on_conflict_do_update(  # an update keeps the original created_at
            index_elements=[apis.c.identifier],
            set_={name: stmt.excluded[name] for name in ("scopes", "token_ttl", "alg", "name", "dpop_required",
                                                          "cert_bound", "tenant")})
        with self._transaction() as conn:
            conn.execute(stmt)
            self._log(conn, [(ChangeKind.API, api.identifier)])

    def load_api(self, identifier: str) -> Api | None:
        row = self._first(select(apis).where(apis.c.identifier == identifier))
        return None if row is None else api_from_row(row)

    def load_apis(self) -> list[Api]:
        return [api_from_row(row) for row in self._rows(select(apis).order_by(apis.c.identifier))]

    def delete_api(self, identifier: str) -> None:
        with self._transaction() as conn:
            if conn.execute(select(apis.c.identifier).where(apis.c.identifier == identifier)).first() is None:
                raise NotFound(f"no API {identifier}")
            granted = select(grants_table.c.api).where(grants_table.c.api == identifier).limit(1)
            if conn.execute(granted).first():
                raise Conflict(f"API {identifier} is still granted to clients")
            conn.execute(delete(apis).where(apis.c.identifier == identifier))
            self._log(conn, [(ChangeKind.API, identifier)])

    # clients ------------------------------------------------------------------
    def create_client(self, client: Client, grants: Sequence[Grant], secrets: Sequence[ClientSecret]) -> None:
        with self._transaction() as conn:
            self._create_client(conn, client, grants, secrets)
            self._log(conn, [(ChangeKind.CLIENT, client.client_id)])

    def _create_client(self, conn: Connection, client: Client, grants: Sequence[Grant],
                       secrets: Sequence[ClientSecret]) -> None:
        if self._has_client(conn, client.client_id):
            raise Conflict(f"client {client.client_id} already exists")
        self._check_apis(conn, grants)
        conn.execute(insert(clients).values(created_at=client.created_at, **client_values(client)))
        self._insert_grants(conn, grants)
        if secrets:
            conn.execute(insert(client_secrets), [secret_values(s) for s in secrets])
        self._set_federated(conn, client, replace=False)

    def create_clients(self, records: Sequence[ClientRecord]) -> None:
        if not records:
            return
        with self._transaction() as conn:
            ids = [r.client.client_id for r in records]
            if len(set(ids)) != len(ids):
                raise Conflict("a client id is listed twice")
            for start in range(0, len(ids), _BATCH):
                chunk = ids[start:start + _BATCH]
                taken = conn.execute(select(clients.c.client_id).where(clients.c.client_id.in_(chunk))).first()
                if taken is not None:
                    raise Conflict(f"client {taken.client_id} already exists")
            apis_named = sorted({g.api for r in records for g in r.grants})
            self._check_apis(conn, [Grant("", api, ()) for api in apis_named])
            for start in range(0, len(records), _BATCH):
                chunk_records = records[start:start + _BATCH]
                conn.execute(insert(clients), [{"created_at": r.client.created_at, **client_values(r.client)}
                                               for r in chunk_records])
                self._insert_grants(conn, [g for r in chunk_records for g in r.grants])
                secret_rows = [secret_values(s) for r in chunk_records for s in r.secrets]
                if secret_rows:
                    conn.execute(insert(client_secrets), secret_rows)
                federated = [row for r in chunk_records for row in _federated_rows(r.client)]
                if federated:
                    conn.execute(insert(federated_identities), federated)
            self._log(conn, [(ChangeKind.CLIENT, client_id) for client_id in ids])

    def _set_federated(self, conn: Connection, client: Client, *, replace: bool) -> None:
        if replace:
            conn.execute(delete(federated_identities).where(federated_identities.c.client_id == client.client_id))
        rows = _federated_rows(client)
        if rows:
            conn.execute(insert(federated_identities), rows)

    def _has_client(self, conn: Connection, client_id: str) -> bool:
        query = select(clients.c.client_id).where(clients.c.client_id == client_id)
        return conn.execute(query).first() is not None

    def _check_apis(self, conn: Connection, new_grants: Sequence[Grant]) -> None:
        wanted = [g.api for g in new_grants]
        if not wanted:
            return
        known = set(conn.execute(select(apis.c.identifier).where(apis.c.identifier.in_(wanted))).scalars())
        for api in wanted:
            if api not in known:
                raise NotFound(f"no API {api}")

    def _insert_grants(self, conn: Connection, new_grants: Sequence[Grant]) -> None:
        if new_grants:
            rows = [{"client_id": g.client_id, "api": g.api, "scopes": join_scopes(g.scopes),
                     "position": g.position} for g in new_grants]
            conn.execute(insert(grants_table), rows)

    def update_client(self, client: Client) -> None:
        with self._transaction() as conn:
            result = conn.execute(update(clients).where(clients.c.client_id == client.client_id)
                                  .values(**client_values(client)))
            if result.rowcount == 0:
                raise NotFound(f"no client {client.client_id}")
            self._set_federated(conn, client, replace=True)
            self._log(conn, [(ChangeKind.CLIENT, client.client_id)])

    def delete_client(self, client_id: str) -> None:
        with self._transaction() as conn:
            # Explicit rather than relying on ON DELETE CASCADE alone: a SQLite connection
            # opened without PRAGMA foreign_keys would silently keep the orphans.
            conn.execute(delete(grants_table).where(grants_table.c.client_id == client_id))
            conn.execute(delete(client_secrets).where(client_secrets.c.client_id == client_id))
            conn.execute(delete(client_registrations).where(client_registrations.c.client_id == client_id))
            conn.execute(delete(federated_identities).where(federated_identities.c.client_id == client_id))
            if conn.execute(delete(clients).where(clients.c.client_id == client_id)).rowcount == 0:
                raise NotFound(f"no client {client_id}")
            self._log(conn, [(ChangeKind.CLIENT, client_id)])

    def set_grants(self, client_id: str, grants: Sequence[Grant]) -> None:
        with self._transaction() as conn:
            if not self._has_client(conn, client_id):
                raise NotFound(f"no client {client_id}")
            self._check_apis(conn, grants)
            conn.execute(delete(grants_table).where(grants_table.c.client_id == client_id))
            self._insert_grants(conn, grants)
            self._log(conn, [(ChangeKind.CLIENT, client_id)])

    def load_client(self, client_id: str) -> Client | None:
        row = self._first(select(clients).where(clients.c.client_id == client_id))
        return None if row is None else client_from_row(row)

    def load_clients(self) -> list[Client]:
        return [client_from_row(row) for row in self._rows(select(clients).order_by(clients.c.client_id))]

    def count_clients(self, limit: int | None = None) -> int:
        ids = select(clients.c.client_id)
        if limit is not None:
            ids = ids.limit(limit)
        with self._transaction(write=False) as conn:
            return int(conn.execute(select(func.count()).select_from(ids.subquery())).scalar() or 0)

    def load_client_records(self, client_ids: Sequence[str]) -> list[ClientRecord]:
        wanted = sorted(set(client_ids))
        if not wanted:
            return []
        c, g, s = clients.c, grants_table.c, client_secrets.c
        # One query: each client row joined with its grants and its secrets. The product of the two is
        # small (a client has a few of each), and one round trip is what a cold client's request waits for.
        query = (select(clients, g.api.label("g_api"), g.scopes.label("g_scopes"), g.position.label("g_position"),
                        *(col.label(f"s_{col.name}") for col in client_secrets.c if col.name != "client_id"))
                 .select_from(clients.outerjoin(grants_table, g.client_id == c.client_id)
                              .outerjoin(client_secrets, s.client_id == c.client_id))
                 .where(c.client_id.in_(bindparam("ids", expanding=True))))
        found: dict[str, tuple[Client, dict[int, Grant], dict[str, ClientSecret]]] = {}
        with self._transaction(write=False) as conn:
            for start in range(0, len(wanted), _BATCH):
                for row in conn.execute(query, {"ids": wanted[start:start + _BATCH]}):
                    m = row._mapping
                    client_id = m["client_id"]
                    held = found.get(client_id)
                    if held is None:
                        held = found[client_id] = (client_from_row(row), {}, {})
                    if m["g_api"] is not None and m["g_position"] not in held[1]:
                        held[1][m["g_position"]] = Grant(held[0].client_id, sys.intern(m["g_api"]),
                                                         split_scopes(m["g_scopes"]), m["g_position"])
                    if m["s_secret_id"] is not None and m["s_secret_id"] not in held[2]:
                        held[2][m["s_secret_id"]] = ClientSecret(
                            m["s_secret_id"], held[0].client_id, bytes(m["s_hash"]), m["s_created_at"],
                            m["s_expires_at"], m["s_revoked_at"], m["s_last_used_at"], m["s_hint"])
        return [ClientRecord(client,
                             tuple(grants[p] for p in sorted(grants)),
                             tuple(sorted(secrets.values(), key=lambda x: (x.created_at, x.secret_id))))
                for client, grants, secrets in (found[cid] for cid in wanted if cid in found)]

    def load_federated_client_ids(self, issuer: str, subject: str) -> list[str]:
        f = federated_identities.c
        query = select(f.client_id).where(f.issuer == issuer, f.subject == subject).order_by(f.client_id)
        with self._transaction(write=False) as conn:
            return [sys.intern(cid) for cid in conn.execute(query).scalars()]

    def load_grants(self, client_id: str | None = None) -> list[Grant]:
        g = grants_table.c
        query = select(grants_table).order_by(g.client_id, g.position)
        if client_id is not None:
            query = query.where(g.client_id == client_id)
        with self._transaction(write=False) as conn:
            return [Grant(sys.intern(row.client_id), sys.intern(row.api), split_scopes(row.scopes), row.position)
                    for row in conn.execute(query)]

    # secrets ------------------------------------------------------------------
    def add_secret(self, secret: ClientSecret, *, expire_others_at: float | None = None) -> None:
        with self._transaction() as conn:
            if not self._has_client(conn, secret.client_id):
                raise NotFound(f"no client {secret.client_id}")
            if expire_others_at is not None:
                others = client_secrets.c
                conn.execute(update(client_secrets)
                             .where(others.client_id == secret.client_id,
                                    others.expires_at.is_(None) | (others.expires_at > expire_others_at))
                             .values(expires_at=expire_others_at))
            conn.execute(insert(client_secrets).values(secret_values(secret)))
            self._log(conn, [(ChangeKind.CLIENT, secret.client_id)])

    def revoke_secret(self, client_id: str, secret_id: str, at: float) -> None:
        c = client_secrets.c
        with self._transaction() as conn:
            query = select(c.secret_id).where(c.secret_id == secret_id, c.client_id == client_id)
            if conn.execute(query).first() is None:
                raise NotFound(f"client {client_id} has no secret {secret_id}")
            # The first revocation time stands, even against a concurrent revocation.
            conn.execute(update(client_secrets).where(c.secret_id == secret_id, c.revoked_at.is_(None))
                         .values(revoked_at=at))
            self._log(conn, [(ChangeKind.CLIENT, client_id)])

    def load_secrets(self, client_id: str | None = None) -> list[ClientSecret]:
        c = client_secrets.c
        query = select(client_secrets).order_by(c.client_id, c.created_at, c.secret_id)
        if client_id is not None:
            query = query.where(c.client_id == client_id)
        return [secret_from_row(row) for row in self._rows(query)]

    def record_secret_use(self, uses: dict[str, float]) -> None:
        if not uses:
            return
        c = client_secrets.c
        # Only ever moves forward, so batches flushed out of order by several processes are harmless;
        # sorted, so concurrent batches lock rows in the same order and cannot deadlock.
        stmt = (update(client_secrets)
                .where(c.secret_id == bindparam("sid"),
                       c.last_used_at.is_(None) | (c.last_used_at < bindparam("used")))
                .values(last_used_at=bindparam("used")))
        with self._transaction() as conn:
            conn.execute(stmt, [{"sid": sid, "used": at} for sid, at in sorted(uses.items())])

    # dynamic registration -----------------------------------------------------
    def save_registration_token(self, token: RegistrationToken) -> None:
        with self._transaction() as conn:
            conn.execute(insert(registration_tokens).values(
                token_id=token.token_id, hash=token.hash, grants=policy_json(token.grants), tenant=token.tenant,
                approval=token.approval, max_uses=token.max_uses, uses=token.uses, expires_at=token.expires_at,
                revoked_at=token.revoked_at, created_at=token.created_at, created_by=token.created_by))

    def load_registration_token(self, token_hash: bytes) -> RegistrationToken | None:
        with self._transaction(write=False) as conn:
            row = conn.execute(select(registration_tokens).where(registration_tokens.c.hash == token_hash)).first()
        return None if row is None else registration_token_from_row(row)

    def load_registration_tokens(self) -> list[RegistrationToken]:
        t = registration_tokens.c
        with self._transaction(write=False) as conn:
            return [registration_token_from_row(row)
                    for row in conn.execute(select(registration_tokens).order_by(t.created_at, t.token_id))]

    def revoke_registration_token(self, token_id: str, at: float) -> None:
        t = registration_tokens.c
        with self._transaction() as conn:
            if conn.execute(select(t.token_id).where(t.token_id == token_id)).first() is None:
                raise NotFound(f"no registration token {token_id}")
            conn.execute(update(registration_tokens).where(t.token_id == token_id, t.revoked_at.is_(None))
                         .values(revoked_at=at))

    def register_client(self, token_id: str, now: float, client: Client, grants: Sequence[Grant],
                        secrets: Sequence[ClientSecret], registration: ClientRegistration) -> bool:
        t = registration_tokens.c
        # One conditional UPDATE spends the use: on PostgreSQL a racing transaction waits on the row
        # lock and re-evaluates the condition against the committed count; SQLite's BEGIN IMMEDIATE
        # runs writers one at a time. Either way no more than max_uses registrations commit.
        spend = (update(registration_tokens)
                 .where(t.token_id == token_id, t.revoked_at.is_(None),
                        or_(t.expires_at.is_(None), t.expires_at > now),
                        or_(t.max_uses.is_(None), t.uses < t.max_uses))
                 .values(uses=t.uses + 1))
        with self._transaction() as conn:
            if conn.execute(spend).rowcount != 1:
                return False
            self._create_client(conn, client, grants, secrets)
            conn.execute(insert(client_registrations).values(
                client_id=registration.client_id, token_id=registration.token_id,
                access_token_hash=registration.access_token_hash, grants=policy_json(registration.grants),
                created_at=registration.created_at))
            self._log(conn, [(ChangeKind.CLIENT, client.client_id)])
        return True

    def load_registration(self, client_id: str) -> ClientRegistration | None:
        r = client_registrations.c
        with self._transaction(write=False) as conn:
            row = conn.execute(select(client_registrations).where(r.client_id == client_id)).first()
        return None if row is None else registration_from_row(row)

    # keys ---------------------------------------------------------------------
    def add_key(self, key: SigningKey) -> None:
        with self._transaction() as conn:
            try:
                conn.execute(insert(signing_keys).values(
                    kid=key.kid, alg=key.alg, state=key.state.value,
                    public_jwk=json.dumps(key.public_jwk, sort_keys=True, separators=(",", ":")),
                    encrypted_private_key=key.encrypted_private_key, created_at=key.created_at,
                    activated_at=key.activated_at, retired_at=key.retired_at))
            except sa.IntegrityError:
                raise Conflict(f"key {key.kid} exists") from None
            self._log(conn, [(ChangeKind.KEY, key.kid)])

    def set_key_states(self, transitions: Iterable[tuple[str, KeyState, float]],
                       *, expect: dict[str, KeyState] | None = None) -> bool:
        steps = list(transitions)
        k = signing_keys.c
        with self._transaction() as conn:
            if expect:
                # FOR UPDATE (a no-op on SQLite, already serialised by BEGIN IMMEDIATE) makes a
                # concurrent compare-and-set wait here and then see our result.
                query = (select(k.kid, k.state).where(k.kid.in_(list(expect)))
                         .order_by(k.kid).with_for_update())
                states = {row.kid: row.state for row in conn.execute(query)}
                if any(states.get(kid) != state.value for kid, state in expect.items()):
                    return False
            for kid, state, at in steps:
                values: dict[str, object] = {"state": state.value}
                if state is KeyState.ACTIVE:
                    values["activated_at"] = at
                elif state is KeyState.RETIRED:
                    values["retired_at"] = at
                if conn.execute(update(signing_keys).where(k.kid == kid).values(values)).rowcount == 0:
                    raise NotFound(f"no key {kid}")
            self._log(conn, [(ChangeKind.KEY, kid) for kid, _, _ in steps])
            return True

    def delete_keys(self, kids: Iterable[str]) -> None:
        with self._transaction() as conn:
            gone = [kid for kid in kids
                    if conn.execute(delete(signing_keys).where(signing_keys.c.kid == kid)).rowcount]
            self._log(conn, [(ChangeKind.KEY, kid) for kid in gone])

    def load_keys(self) -> list[SigningKey]:
        query = select(signing_keys).order_by(signing_keys.c.created_at, signing_keys.c.kid)
        return [key_from_row(row) for row in self._rows(query)]

    # revocation ---------------------------------------------------------------
    def revoke_token(self, revoked: RevokedToken) -> None:
        stmt = (self._insert(revoked_tokens)
                .values(jti=revoked.jti, client_id=revoked.client_id, exp=revoked.exp,
                        status_list=revoked.status_list, status_idx=revoked.status_idx)
                .on_conflict_do_nothing(index_elements=[revoked_tokens.c.jti])
                .execution_options(preserve_rowcount=True))  # drivers may not report it for INSERT
        with self._transaction() as conn:
            if conn.execute(stmt).rowcount == 1:  # 0: already revoked, nothing new to announce
                self._log(conn, [(ChangeKind.REVOCATION, revoked.jti)])

    def load_revoked_tokens(self, now: float, jti: str | None = None) -> list[RevokedToken]:
        r = revoked_tokens.c
        query = select(revoked_tokens).where(r.exp > now).order_by(r.exp, r.jti)
        if jti is not None:
            query = query.where(r.jti == jti)
        with self._transaction(write=False) as conn:
            return [RevokedToken(row.jti, row.client_id, row.exp, row.status_list, row.status_idx)
                    for row in conn.execute(query)]

    def purge_revocations(self, now: float) -> int:
        with self._transaction() as conn:
            return conn.execute(delete(revoked_tokens).where(revoked_tokens.c.exp <= now)).rowcount

    # token status lists -------------------------------------------------------
    def reserve_status_block(self, client_id: str, size: int, now: float, reusable_at: float,
                             list_size: int) -> StatusBlock:
        return self.reserve_status_blocks([(client_id, size)], now, reusable_at, list_size)[0]

    def reserve_status_blocks(self, wants: Sequence[tuple[str, int]], now: float, reusable_at: float,
                              list_size: int) -> list[StatusBlock]:
        if any(not 0 < size <= list_size for _, size in wants):
            raise ValueError("block size must be between 1 and the list size")
        if not wants:
            return []
        lists = status_lists.c
        with self._transaction() as conn:
            if self._postgres:  # SQLite's BEGIN IMMEDIATE already serialises writers
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _STATUS_LOCK})
            smallest = min(size for _, size in wants)
            # every list that could take one of the blocks, lowest first; filled here as the blocks are placed
            room = {int(row.list_id): int(row.next_start) for row in conn.execute(
                select(lists.list_id, lists.next_start).where(lists.next_start + smallest <= list_size)
                .order_by(lists.list_id))}
            touched: set[int] = set()
            created: dict[int, None] = {}
            newest: int | None = None
            out: list[StatusBlock] = []
            for client_id, size in wants:
                list_id = next((i for i, start in room.items() if start + size <= list_size), None)
                if list_id is None:  # a new list; ids are never reused, so a late revocation cannot reach a newer token
                    if newest is None:
                        newest = int(conn.execute(select(func.max(lists.list_id))).scalar() or 0)
                    newest += 1
                    list_id = newest
                    room[list_id] = 0
                    created[list_id] = None
                start = room[list_id]
                room[list_id] = start + size
                touched.add(list_id)
                out.append(StatusBlock(list_id, start, size, client_id, now, reusable_at))
            for list_id in sorted(touched - created.keys()):
                conn.execute(update(status_lists).where(lists.list_id == list_id).values(
                    next_start=room[list_id],
                    reusable_at=case((lists.reusable_at < reusable_at, reusable_at), else_=lists.reusable_at)))
            if created:
                conn.execute(insert(status_lists), [{"list_id": i, "next_start": room[i], "reusable_at": reusable_at}
                                                    for i in created])
            conn.execute(insert(status_blocks), [
                {"list_id": b.list_id, "start": b.start, "size": b.size, "client_id": b.client_id,
                 "reserved_at": now, "reusable_at": reusable_at} for b in out])
        return out

    def load_status_marks(self, list_id: int, now: float) -> list[tuple[int, int]] | None:
        lists, blocks, r = status_lists.c, status_blocks.c, revoked_tokens.c
        revoked_blocks = (select(blocks.start, blocks.size)
                          .select_from(status_blocks.outerjoin(clients, clients.c.client_id == blocks.client_id))
                          .where(blocks.list_id == list_id, blocks.reusable_at > now,
                                 or_(clients.c.client_id.is_(None), clients.c.revoked_before >= blocks.reserved_at)))
        revoked_one = select(r.status_idx).where(r.status_list == list_id, r.exp > now, r.status_idx.is_not(None))
        with self._transaction(write=False) as conn:
            row = conn.execute(select(lists.reusable_at).where(lists.list_id == list_id)).first()
            if row is None or row.reusable_at <= now:
                return None
            marks = [(int(row.start), int(row.size)) for row in conn.execute(revoked_blocks)]
            marks += [(int(idx), 1) for idx in conn.execute(revoked_one).scalars()]
        return sorted(marks)

    def load_status_lists(self, now: float) -> list[int]:
        lists = status_lists.c
        query = select(lists.list_id).where(lists.reusable_at > now).order_by(lists.list_id)
        with self._transaction(write=False) as conn:
            return [int(i) for i in conn.execute(query).scalars()]

    def purge_status_blocks(self, now: float) -> int:
        with self._transaction() as conn:
            return int(conn.execute(delete(status_blocks).where(status_blocks.c.reusable_at <= now)).rowcount)

    # change log ---------------------------------------------------------------
    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        c = change_log.c
        query = select(change_log).where(c.seq > seq).order_by(c.seq).limit(limit)
        return [Change(row.seq, ChangeKind(row.kind), row.key, row.at) for row in self._rows(query)]

    def latest_change(self) -> int:
        with self._transaction(write=False) as conn:
            latest = conn.execute(select(func.max(change_log.c.seq))).scalar()
        return int(latest or 0)

    def prune_changes(self, before: float) -> int:
        c = change_log.c
        newest = select(func.max(c.seq)).scalar_subquery()
        with self._transaction() as conn:  # the newest row stays: it carries latest_change()
            return conn.execute(delete(change_log).where(c.at < before, c.seq < newest)).rowcount

    # audit cursors ------------------------------------------------------------
    # single-use assertions ------------------------------------------------------
    def use_assertion(self, key: str, exp: float) -> bool:
        # RETURNING rather than rowcount: drivers report -1 for some INSERT ... ON CONFLICT forms.
        stmt = self._insert(used_assertions).values(key=key, exp=exp).on_conflict_do_nothing(
            index_elements=[used_assertions.c.key]).returning(used_assertions.c.key)
        with self._transaction() as conn:
            return conn.execute(stmt).first() is not None

    def purge_assertions(self, now: float) -> int:
        with self._transaction() as conn:
            return int(conn.execute(delete(used_assertions).where(used_assertions.c.exp <= now)).rowcount)

    def load_cursor(self, name: str) -> int:
        query = select(audit_cursors.c.seq).where(audit_cursors.c.name == name)
        with self._transaction(write=False) as conn:
            seq = conn.execute(query).scalar()
        return int(seq or 0)

    def save_cursor(self, name: str, seq: int) -> None:
        stmt = self._insert(audit_cursors).values(name=name, seq=seq, updated_at=time.time())
        stmt = stmt.on_conflict_do_update(
            index_elements=[audit_cursors.c.name],
            set_={"seq": stmt.excluded.seq, "updated_at": stmt.excluded.updated_at})
        with self._transaction() as conn:
            conn.execute(stmt)
