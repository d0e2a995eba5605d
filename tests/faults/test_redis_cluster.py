"""Two real `warden serve` nodes on one PostgreSQL and one Redis (a private redis-server of the
test's own, started and stopped by PID): limits hold once for the cluster, a client assertion
replayed on the other node is refused, and Redis stopped and restarted under requests gives the
stated failure semantics (limits on each node's share, single-use checks 503 + Retry-After,
readiness says so, never a 500) with automatic recovery (F04). Loopback only, bounded in requests."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import pytest

from tests.integration.conftest import free_port, wait_until
from tests.integration.test_cli_e2e import Served, cli_env, cli_json, run_cli  # noqa: F401 (fixture)
from tests.integration.test_shared_state import PrivateRedis, private_redis  # noqa: F401 (fixture)
from warden.jose import generate_private_key, public_jwk

pytestmark = pytest.mark.slow
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _assertion(key: object, client_id: str, audience: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": client_id, "sub": client_id, "aud": audience, "exp": now + 60, "iat": now,
                       "jti": uuid.uuid4().hex}, key, algorithm="ES256", headers={"kid": "k"})  # type: ignore[arg-type]


def _post_assertion(url: str, assertion: str) -> httpx.Response:
    return httpx.post(f"{url}/oauth2/token", timeout=5, data={
        "grant_type": "client_credentials", "client_assertion_type": _ASSERTION_TYPE, "client_assertion": assertion})


def test_two_nodes_share_limits_and_replay_records_and_survive_redis_restarts(
        cli_env: dict[str, str], postgres_url: str, make_postgres_schema, private_redis: PrivateRedis,  # noqa: F811
        tmp_path: Path) -> None:
    schema = make_postgres_schema()
    sep = "&" if "?" in postgres_url else "?"
    env = dict(cli_env, WARDEN_DATABASE_URL=f"{postgres_url}{sep}options=-csearch_path%3D{schema}",
               WARDEN_KEYS_ENCRYPTION_KEY="q3mCUvYsZyQ1XzX5n1QzY4uQ8i7V7Jm2dB9Y9c5Wc0E",
               WARDEN_REDIS_URL=private_redis.url, WARDEN_REDIS_KEY_PREFIX=f"t{uuid.uuid4().hex[:8]}:",
               WARDEN_LIMITS_CLIENT_RATE="0.01", WARDEN_LIMITS_CLIENT_BURST="10",
               WARDEN_ISSUER=f"http://127.0.0.1:{free_port()}")  # one issuer, as behind a load balancer
    run_cli("apis", "create", "https://api.example", "--scopes", "read", env=env)
    key = generate_private_key("ES256")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(key, kid="k")]}))
    signer = cli_json("clients", "create", "signer", "--grant", "https://api.example=read", "--auth-method",
                      "private_key_jwt", "--jwks", str(jwks), "--rate-limit", "1000", env=env)["client_id"]
    created = cli_json("clients", "create", "svc", "--grant", "https://api.example=read", env=env)
    cid, secret = created["client_id"], created["client_secret"]
    a, b = Served(env, free_port()), Served(env, free_port())
    try:
        issuer = httpx.get(f"{a.url}/.well-known/oauth-authorization-server").json()["issuer"]
        # one limit for the cluster: burst 10, alternating nodes -> 10 in all, where per-node limits give 20
        # (+1 for a node's first sight of the key, and slack for a settle still in flight on a busy machine)
        codes = [(a if i % 2 else b).token(cid, secret).status_code for i in range(30)]
        assert set(codes) <= {200, 429}
        assert 10 <= codes.count(200) <= 13, codes

        # racing copies of one assertion on both nodes: exactly one accepted
        assertion = _assertion(key, signer, issuer)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: _post_assertion((a, b)[i % 2].url, assertion).status_code, range(8)))
        assert answers.count(200) == 1 and set(answers) <= {200, 401}, answers  # the others: replay

        # Redis stopped: jti fails closed (503 + Retry-After), readiness says degraded, never a 500
        private_redis.stop()
        refused = _post_assertion(a.url, _assertion(key, signer, issuer))
        assert refused.status_code == 503 and refused.json()["error"] == "temporarily_unavailable"
        assert refused.headers["retry-after"]
        assert wait_until(lambda: httpx.get(f"{b.url}/readyz").json().get("redis") == "unreachable", timeout=10)
        ready = httpx.get(f"{a.url}/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        # limits keep answering, locally (this client's bucket is spent: 429, not 500 or 503)
        assert {a.token(cid, secret).status_code, b.token(cid, secret).status_code} <= {200, 429}
        assert "warden_shared_state_up 0.0" in httpx.get(f"{a.url}/metrics").text

        # Redis back on the same port: recovery is automatic on both nodes
        private_redis.start()
        for node in (a, b):
            assert wait_until(lambda node=node: _post_assertion(node.url, _assertion(key, signer, issuer))
                              .status_code == 200, timeout=15)
            assert wait_until(lambda node=node: httpx.get(f"{node.url}/readyz").json().get("redis") == "up",
                              timeout=15)
    finally:
        results = [a.stop(), b.stop()]
    assert [r[0] for r in results] == [0, 0], [r[2][-2000:] for r in results]
    assert all("Traceback" not in r[2] for r in results)
