"""F05: the replay store (Redis) loses its data. Records of used client assertions go with it, so an
assertion can be replayed once more, but only while it is younger than
`client_auth.assertion_max_age` (+ leeway): what a flush exposes is bounded by that setting, not by
the assertion's own `exp`. A real node and a private redis-server; loopback only."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
import pytest
import redis

from tests.faults.processes import Node
from tests.faults.test_redis_cluster import _post_assertion
from tests.integration.conftest import wait_until
from tests.integration.test_cli_e2e import cli_json, run_cli
from tests.integration.test_shared_state import PrivateRedis, private_redis  # noqa: F401 (fixture)
from warden.jose import generate_private_key, public_jwk

pytestmark = pytest.mark.slow


def test_F05_after_a_redis_flush_a_replay_is_refused_once_the_assertion_is_older_than_its_max_age(
        cli_env: dict[str, str], private_redis: PrivateRedis, tmp_path: Path) -> None:  # noqa: F811
    """F05: FLUSHALL, then the same assertion again: accepted once, refused once past its max age."""
    env = dict(cli_env, WARDEN_REDIS_URL=private_redis.url, WARDEN_CLIENT_AUTH_ASSERTION_MAX_AGE="3",
               WARDEN_CLIENT_AUTH_LEEWAY="1")
    run_cli("init", env=env)
    cli_json("apis", "create", "https://api.example", "--scopes", "read", env=env)
    key = generate_private_key("ES256")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(key, kid="k")]}))
    cid = cli_json("clients", "create", "signer", "--grant", "https://api.example=read", "--auth-method",
                   "private_key_jwt", "--jwks", str(jwks), env=env)["client_id"]
    node = Node(env, tmp_path)
    try:
        issuer = node.url
        assert wait_until(lambda: _post_assertion(node.url, jwt.encode(
            {"iss": cid, "sub": cid, "aud": issuer, "exp": int(time.time()) + 60, "iat": int(time.time()),
             "jti": uuid.uuid4().hex}, key, algorithm="ES256", headers={"kid": "k"})).status_code == 200,  # type: ignore[arg-type]
            timeout=10)
        iat = int(time.time())
        assertion = jwt.encode({"iss": cid, "sub": cid, "aud": issuer, "exp": iat + 600, "iat": iat,
                                "jti": uuid.uuid4().hex}, key, algorithm="ES256", headers={"kid": "k"})  # type: ignore[arg-type]
        assert _post_assertion(node.url, assertion).status_code == 200
        assert _post_assertion(node.url, assertion).json()["error"] == "invalid_client"  # replay refused
        redis.Redis.from_url(private_redis.url).flushall()  # the records are gone
        assert _post_assertion(node.url, assertion).status_code == 200  # the documented exposure
        assert wait_until(lambda: time.time() > iat + 3 + 1 + 1, timeout=10)  # past max age + leeway
        late = _post_assertion(node.url, assertion)
        assert late.status_code == 401 and late.json()["error"] == "invalid_client", late.text
    finally:
        code = node.stop()
    assert code == 0, node.log()[-3000:]
