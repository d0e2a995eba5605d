"""From `database_url` (or none) to a pooled SQLAlchemy engine and an open SQL store.

Without a URL Warden keeps an embedded SQLite file in the data directory, so a
single node needs no database server; with a PostgreSQL URL several nodes share
one database. Both run the same `SqlStore` code. SQLite connections are set up
for concurrent server processes: WAL (readers never block the writer), a busy
timeout instead of instant "database is locked", enforced foreign keys, and
driver-level autocommit so the store alone decides where transactions begin.
"""

from __future__ import annotations

import os
import re
import sqlite3

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from warden.errors import ConfigError
from warden.storage.contract import Store
from warden.storage.sql import SqlStore

__all__ = ["ACCEPTED_URLS", "build_engine", "open_store", "parse_database_url", "redact_url"]

ACCEPTED_URLS = "postgresql://..., postgres://..., postgresql+psycopg://... or sqlite:///path"

_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
_SQLITE_SCHEMES = frozenset({"sqlite", "sqlite+pysqlite"})
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=5000",  # first, so switching to WAL waits for other connections
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",  # durable at checkpoints; safe against corruption in WAL mode
)
_PG_CONNECT_TIMEOUT = 10


def parse_database_url(database_url: str | None, data_dir: str) -> URL:
    """Return the SQLAlchemy URL for `database_url`, or for `<data_dir>/warden.db` when it is None.

    Creates `data_dir` (mode 0700) in the latter case. Raises ConfigError for an
    unsupported or malformed URL; the message never repeats the URL's password.
    """
    if database_url is None:
        path = os.path.join(_ensure_dir(data_dir), "warden.db")
        _create_private(path)
        return URL.create("sqlite+pysqlite", database=path)
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise ConfigError(f"database_url is not a URL; expected {ACCEPTED_URLS}") from None
    if url.drivername in _POSTGRES_SCHEMES:
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in _SQLITE_SCHEMES:
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            raise ConfigError("database_url sqlite:/// needs a file path "
                              "(an in-memory SQLite database is private to one connection)")
        return url.set(drivername="sqlite+pysqlite")
    raise ConfigError(f"database_url scheme {url.drivername!r} is not supported; expected {ACCEPTED_URLS}")


def _create_private(path: str) -> None:
    """Create the database file owner-only before SQLite does (its -wal and -shm files copy the mode):
    it holds secret hashes and encrypted private keys."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot create database file {path}: {exc.strerror}") from None


def _ensure_dir(path: str) -> str:
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        try:
            os.makedirs(path, mode=0o700)
            os.chmod(path, 0o700)  # makedirs' mode is filtered through the umask
        except OSError as exc:
            raise ConfigError(f"data_dir {path} cannot be created: {exc.strerror}") from exc
    return path


def redact_url(url: str | URL) -> str:
    """`url` for messages and logs: any password, in the userinfo or the query, becomes ***."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", str(url))
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True)


def build_engine(url: URL, *, schema: str | None = None) -> Engine:
    """A pooled engine for a URL from `parse_database_url`.

    `schema` (PostgreSQL only) is put first on every connection's search_path, so
    migrations and queries both land there; tests use it to isolate themselves.
    Raises ConfigError for a schema on SQLite or a schema name that is not a plain identifier.
    """
    if url.get_backend_name() == "sqlite":
        if schema is not None:
            raise ConfigError("a database schema applies to PostgreSQL only")
        engine = create_engine(url)
        event.listen(engine, "connect", _prepare_sqlite)
        return engine
    connect_args: dict[str, str | int] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = _PG_CONNECT_TIMEOUT  # fail fast rather than hang on a dead host
    if "application_name" not in url.query:
        connect_args["application_name"] = "warden"
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise ConfigError("database schema must be a lowercase SQL identifier")
        connect_args["options"] = f"-csearch_path={schema}"
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _prepare_sqlite(dbapi_connection: object, _record: ConnectionPoolEntry) -> None:
    assert isinstance(dbapi_connection, sqlite3.Connection)
    # Autocommit at the driver: it would otherwise open transactions lazily, too late for
    # BEGIN IMMEDIATE, and SqlStore could not make a check-then-write atomic.
    dbapi_connection.isolation_level = None
    for pragma in _SQLITE_PRAGMAS:
        dbapi_connection.execute(pragma).close()


def open_store(database_url: str | None, data_dir: str, *, schema: str | None = None) -> Store:
    """Open (without migrating or connecting yet) the SQL store for `database_url`.

    None means the embedded SQLite database `<data_dir>/warden.db`. Raises ConfigError
    as `parse_database_url` and `build_engine` do; connection problems surface later as
    StorageUnavailable from the store's methods.
    """
    return SqlStore(build_engine(parse_database_url(database_url, data_dir), schema=schema))
