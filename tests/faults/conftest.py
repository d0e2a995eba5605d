"""Fixtures of the fault suite: the CLI environment of `warden serve` processes, and a private
PostgreSQL server (one per test module; each test takes a fresh database in it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.processes import PrivatePostgres
from tests.integration.test_cli_e2e import cli_env  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.close()
