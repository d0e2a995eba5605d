"""Fixtures shared by every test directory: a reachable PostgreSQL and throwaway schemas in it.

PostgreSQL comes from WARDEN_TEST_POSTGRES_URL (default: local trust-auth server,
database `test`). When it cannot be reached, tests that need it are skipped with
the URL in the reason, unless WARDEN_REQUIRE_POSTGRES=1 (set in CI) makes that an error.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _conninfo(url: str) -> str:
    """psycopg reads libpq URLs; SQLAlchemy's driver-qualified scheme is not one."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL, checked once per session (a skip or failure is cached by pytest)."""
    import psycopg

    from warden.storage.engine import redact_url

    url = os.environ.get("WARDEN_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        psycopg.connect(_conninfo(url), connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = f"PostgreSQL unreachable at {redact_url(url)}: {str(exc).strip().splitlines()[0]}"
        if os.environ.get("WARDEN_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " (WARDEN_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(reason)
    return url


@pytest.fixture
def make_postgres_schema(postgres_url: str) -> Iterator[Callable[[], str]]:
    """Create fresh, empty schemas on demand; drop them (with their contents) at teardown."""
    import psycopg
    from psycopg import sql

    created: list[str] = []

    def make() -> str:
        name = f"warden_t_{secrets.token_hex(6)}"
        with psycopg.connect(_conninfo(postgres_url), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        created.append(name)
        return name

    yield make
    if created:
        with psycopg.connect(_conninfo(postgres_url), autocommit=True) as conn:
            for name in created:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis's URL (WARDEN_TEST_REDIS_URL), checked once; skipped when unreachable unless
    WARDEN_REQUIRE_REDIS=1 (set in CI) makes that an error."""
    import redis

    url = os.environ.get("WARDEN_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except (redis.RedisError, OSError) as exc:
        reason = f"Redis unreachable at {url.split('@')[-1]}: {type(exc).__name__}"
        if os.environ.get("WARDEN_REQUIRE_REDIS") == "1":
            pytest.fail(reason + " (WARDEN_REQUIRE_REDIS=1)", pytrace=False)
        pytest.skip(reason)
    return url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own, so parallel runs sharing one Redis never collide."""
    return f"warden-test:{secrets.token_hex(6)}:"
