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

from sqlalchemy import (
    Connection,
    Engine,
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
from warden.core.revocation import RevokedToken, StatusBlock
from warden.core.secrets import ClientSecret
from warden.errors import Conflict, NotFound, StorageError, StorageUnavailable
from warden.storage._rows import (
    api_from_row,
    client_from_row,
    client_values,
    join_scopes,
    key_from_row,
    secret_from_row,
    secret_values,
    split_scopes,
)
from warden.storage.contract import Change, ChangeKind
from warden.storage.migrations import upgrade_to_head
from warden.storage.schema import (
    apis,
    audit_cursors,
    change_log,
    client_secrets,
    clients,
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

    def close(self) -> None:
        self._engine.dispose()

    # APIs ---------------------------------------------------------------------
    def save_api(self, api: Api) -> None:
        values = {"identifier": api.identifier, "scopes": join_scopes(api.scopes), "token_ttl": api.token_ttl,
                  "alg": api.alg, "name": api.name, "created_at": api.created_at,
                  "dpop_required": api.dpop_required, "cert_bound": api.cert_bound}
        stmt = self._insert(apis).values(values)
        stmt = stmt.on_conflict_do_update(  # an update keeps the original created_at
            index_elements=[apis.c.identifier],
            set_={name: stmt.excluded[name] for name in ("scopes", "token_ttl", "alg", "name", "dpop_required",
                                                          "cert_bound")})
        with self._transaction() as conn:
            conn.execute(stmt)
            self._log(conn, [(ChangeKind.API, api.identifier)])

    def load_api(self, identifier: str) -> Api | None:
        with self._transaction(write=False) as conn:
            row = conn.execute(select(apis).where(apis.c.identifier == identifier)).first()
        return None if row is None else api_from_row(row)

    def load_apis(self) -> list[Api]:
        with self._transaction(write=False) as conn:
            return [api_from_row(row) for row in conn.execute(select(apis).order_by(apis.c.identifier))]

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
            if self._has_client(conn, client.client_id):
                raise Conflict(f"client {client.client_id} already exists")
            self._check_apis(conn, grants)
            conn.execute(insert(clients).values(created_at=client.created_at, **client_values(client)))
            self._insert_grants(conn, grants)
            if secrets:
                conn.execute(insert(client_secrets), [secret_values(s) for s in secrets])
            self._log(conn, [(ChangeKind.CLIENT, client.client_id)])

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
            self._log(conn, [(ChangeKind.CLIENT, client.client_id)])

    def delete_client(self, client_id: str) -> None:
        with self._transaction() as conn:
            # Explicit rather than relying on ON DELETE CASCADE alone: a SQLite connection
            # opened without PRAGMA foreign_keys would silently keep the orphans.
            conn.execute(delete(grants_table).where(grants_table.c.client_id == client_id))
            conn.execute(delete(client_secrets).where(client_secrets.c.client_id == client_id))
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
        with self._transaction(write=False) as conn:
            row = conn.execute(select(clients).where(clients.c.client_id == client_id)).first()
        return None if row is None else client_from_row(row)

    def load_clients(self) -> list[Client]:
        with self._transaction(write=False) as conn:
            return [client_from_row(row) for row in conn.execute(select(clients).order_by(clients.c.client_id))]

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
        with self._transaction(write=False) as conn:
            return [secret_from_row(row) for row in conn.execute(query)]

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
        with self._transaction(write=False) as conn:
            return [key_from_row(row) for row in conn.execute(query)]

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
        if not 0 < size <= list_size:
            raise ValueError("block size must be between 1 and the list size")
        lists = status_lists.c
        with self._transaction() as conn:
            if self._postgres:  # SQLite's BEGIN IMMEDIATE already serialises writers
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _STATUS_LOCK})
            row = conn.execute(select(lists.list_id, lists.next_start)
                               .where(lists.next_start + size <= list_size)
                               .order_by(lists.list_id).limit(1)).first()
            if row is not None:
                list_id, start = int(row.list_id), int(row.next_start)
                conn.execute(update(status_lists).where(lists.list_id == list_id).values(
                    next_start=start + size,
                    reusable_at=case((lists.reusable_at < reusable_at, reusable_at), else_=lists.reusable_at)))
            else:  # a new list; ids are never reused, so a late revocation cannot reach a newer token
                list_id, start = int(conn.execute(select(func.max(lists.list_id))).scalar() or 0) + 1, 0
                conn.execute(insert(status_lists).values(list_id=list_id, next_start=size, reusable_at=reusable_at))
            conn.execute(insert(status_blocks).values(list_id=list_id, start=start, size=size, client_id=client_id,
                                                      reserved_at=now, reusable_at=reusable_at))
        return StatusBlock(list_id, start, size, client_id, now, reusable_at)

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
        with self._transaction(write=False) as conn:
            return [Change(row.seq, ChangeKind(row.kind), row.key, row.at) for row in conn.execute(query)]

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
