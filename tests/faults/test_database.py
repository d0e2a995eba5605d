"""The database fails under load, on a private PostgreSQL the test starts (never the shared one):
stopped and restarted under two nodes (F01/F02), and slowed then partitioned through a TCP proxy
the test controls (F03). Loopback only; every load is bounded in requests."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.faults.processes import Load, Node, PrivatePostgres, TcpProxy
from tests.integration.conftest import wait_until
from tests.integration.test_cli_e2e import cli_json

pytestmark = pytest.mark.slow
_KEK = "q3mCUvYsZyQ1XzX5n1QzY4uQ8i7V7Jm2dB9Y9c5Wc0E"


def _client(env: dict[str, str]) -> tuple[str, str]:
    cli_json("apis", "create", "https://api.example", "--scopes", "read", env=env)
    created = cli_json("clients", "create", "svc", "--grant", "https://api.example=read", env=env)
    return created["client_id"], created["client_secret"]


def _ready(node: Node) -> int:
    try:
        return httpx.get(f"{node.url}/readyz", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def test_postgres_stopped_and_restarted_under_load_on_two_nodes(
        cli_env: dict[str, str], private_postgres: PrivatePostgres, tmp_path: Path) -> None:
    """F01: from the cache while the registry is fresh enough, then 503 + Retry-After (never 401 or
    500), readiness down so a load balancer drains both nodes, and recovery without a restart."""
    env = dict(cli_env, WARDEN_DATABASE_URL=private_postgres.url(private_postgres.create_database()),
               WARDEN_KEYS_ENCRYPTION_KEY=_KEK, WARDEN_REGISTRY_READY_STALENESS="1",
               WARDEN_REGISTRY_MAX_STALENESS="3")
    cid, secret = _client(env)
    a, b = Node(env, tmp_path), Node(env, tmp_path)
    load = None
    try:
        assert wait_until(lambda: a.token(cid, secret).status_code == 200 == b.token(cid, secret).status_code,
                          timeout=10)
        load = Load([a.url, b.url], cid, secret, threads=2, pause=0.02, budget=3000)
        assert load.wait_for(20)
        private_postgres.stop()
        # the cached registry keeps issuing while it is younger than registry_max_staleness
        assert a.token(cid, secret).status_code == 200 and b.token(cid, secret).status_code == 200
        for node in (a, b):
            assert wait_until(lambda node=node: _ready(node) == 503, timeout=10)
            assert wait_until(lambda node=node: node.token(cid, secret).status_code == 503, timeout=10)
            refused = node.token(cid, secret)
            assert refused.json()["error"] == "temporarily_unavailable" and int(refused.headers["retry-after"]) >= 1
            assert node.token(cid, "wrong").status_code == 503  # no verdict on credentials without the registry
        private_postgres.start()
        for node in (a, b):
            assert wait_until(lambda node=node: node.token(cid, secret).status_code == 200, timeout=20)
            assert wait_until(lambda node=node: _ready(node) == 200, timeout=20)
        assert load.wait_for(20)
        outcomes = load.stop()
        load = None
    finally:
        if load is not None:
            load.stop()
        codes = [a.stop(), b.stop()]
    statuses = [o.status for o in outcomes]
    assert set(statuses) == {200, 503}, {(o.status, o.error) for o in outcomes}
    assert all(o.error == "temporarily_unavailable" and o.retry_after for o in outcomes if o.status == 503)
    assert statuses[-1] == 200
    assert codes == [0, 0], a.log()[-2000:] + b.log()[-2000:]
    for node in (a, b):
        assert "Traceback" not in node.log()
        assert _KEK not in node.log()


def test_slow_then_partitioned_database_keeps_the_token_path_bounded_and_readiness_says_so(
        cli_env: dict[str, str], private_postgres: PrivatePostgres, tmp_path: Path) -> None:
    """F03: latency on the database, then a blackhole (packets held, nothing refused). Every token
    request is answered within the client's timeout (5 s: an httpx timeout would be recorded as a
    failure) from the cached registry; readiness fails once the registry is older than
    `registry_ready_staleness`, and everything recovers when the partition heals."""
    database = private_postgres.create_database()
    proxy = TcpProxy(private_postgres.port)
    direct = dict(cli_env, WARDEN_DATABASE_URL=private_postgres.url(database), WARDEN_KEYS_ENCRYPTION_KEY=_KEK)
    cid, secret = _client(direct)
    env = dict(direct, WARDEN_DATABASE_URL=private_postgres.url(database).replace(
        f":{private_postgres.port}/", f":{proxy.port}/") + "?connect_timeout=2",
        WARDEN_REGISTRY_READY_STALENESS="3", WARDEN_REGISTRY_MAX_STALENESS="120")
    node = Node(env, tmp_path)
    load = None
    try:
        assert wait_until(lambda: node.token(cid, secret).status_code == 200, timeout=10)
        proxy.latency = 0.05  # every chunk, both ways
        load = Load([node.url], cid, secret, threads=2, pause=0.01, budget=4000)
        assert load.wait_for(30)
        assert _ready(node) == 200  # slow is not down
        proxy.blackhole = True
        assert wait_until(lambda: _ready(node) == 503, timeout=20)
        body = httpx.get(f"{node.url}/readyz", timeout=5).json()
        assert body["status"] == "not ready" and body["registry_staleness_seconds"] >= 3
        assert load.wait_for(50)  # issuing on through the partition
        proxy.blackhole = False
        proxy.latency = 0.0
        assert wait_until(lambda: _ready(node) == 200, timeout=30)
        assert load.wait_for(20)
        outcomes = load.stop()
        load = None
    finally:
        if load is not None:
            load.stop()
        proxy.close()
        code = node.stop()
    failed = [o for o in outcomes if o.status != 200]
    assert not failed, {(o.status, o.error) for o in failed}
    assert code == 0, node.log()[-3000:]
    assert "Traceback" not in node.log()
