"""Backends for the storage contract suite: memory, SQLite in tmp_path, PostgreSQL in a fresh schema.

`store` runs a test on all three. `open_sql_store` runs it on the two SQL ones and
opens any number of independent stores (separate engines and pools, like separate
server processes) on one database; `sql_engine` is a raw engine on that database, and
`sql_open_args` the `open_store` arguments that reach it (for child processes).
PostgreSQL parameters carry the `postgres` marker and resolve the server lazily,
so memory and SQLite never wait for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from warden.storage.contract import Store
from warden.storage.engine import build_engine, open_store, parse_database_url
from warden.storage.memory import MemoryStore

_POSTGRES = pytest.param("postgresql", marks=pytest.mark.postgres)


class Backend:
    """One database, and every store opened on it, closed at teardown."""

    def __init__(self, data_dir: str, database_url: str | None = None, schema: str | None = None,
                 *, memory: bool = False) -> None:
        self.open_args = (database_url, data_dir, schema)
        self._memory = MemoryStore() if memory else None
        self._opened: list[Store] = []

    def open(self) -> Store:
        """A new store on this backend's database, not yet migrated."""
        if self._memory is not None:
            return self._memory
        database_url, data_dir, schema = self.open_args
        store = open_store(database_url, data_dir, schema=schema)
        self._opened.append(store)
        return store

    def close(self) -> None:
        for store in self._opened:
            store.close()


def _backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    data_dir = str(tmp_path / "data")
    if kind == "memory":
        return Backend(data_dir, memory=True)
    if kind == "sqlite":
        return Backend(data_dir)
    url: str = request.getfixturevalue("postgres_url")
    return Backend(data_dir, url, request.getfixturevalue("make_postgres_schema")())


@pytest.fixture(params=["memory", "sqlite", _POSTGRES])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened = _backend(request.param, request, tmp_path)
    yield opened
    opened.close()


@pytest.fixture(params=["sqlite", _POSTGRES])
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened = _backend(request.param, request, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    """A migrated, empty store on every backend."""
    opened = backend.open()
    opened.migrate()
    return opened


@pytest.fixture
def open_sql_store(sql_backend: Backend) -> Callable[[], Store]:
    return sql_backend.open


@pytest.fixture
def sql_open_args(sql_backend: Backend) -> tuple[str | None, str, str | None]:
    return sql_backend.open_args


@pytest.fixture
def sql_engine(sql_backend: Backend) -> Iterator[Engine]:
    database_url, data_dir, schema = sql_backend.open_args
    engine = build_engine(parse_database_url(database_url, data_dir), schema=schema)
    yield engine
    engine.dispose()
