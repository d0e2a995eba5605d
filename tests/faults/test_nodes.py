"""Two real `warden serve` nodes on one PostgreSQL (a throwaway schema of the test server), with a
client spreading load over them: one node SIGKILLed, signing keys rotated while a resource server
validates every token, and one node's clock 20 s ahead. Loopback only, bounded in requests."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import jwt
import pytest

from tests.faults.processes import SKEWED_WARDEN, Load, Node, port_free
from tests.integration.conftest import free_port, wait_until
from tests.integration.test_cli_e2e import cli_json
from warden.resource import InvalidToken, Validator

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
_AUDIENCE = "https://api.example"


@pytest.fixture
def cluster_env(cli_env: dict[str, str], postgres_url: str, make_postgres_schema) -> dict[str, str]:
    """Settings both nodes share; the issuer is node A's URL, where resource servers find keys and lists."""
    sep = "&" if "?" in postgres_url else "?"
    return dict(cli_env, WARDEN_DATABASE_URL=f"{postgres_url}{sep}options=-csearch_path%3D{make_postgres_schema()}",
                WARDEN_KEYS_ENCRYPTION_KEY="q3mCUvYsZyQ1XzX5n1QzY4uQ8i7V7Jm2dB9Y9c5Wc0E",
                WARDEN_ISSUER=f"http://127.0.0.1:{free_port()}")


def _client(env: dict[str, str]) -> tuple[str, str]:
    cli_json("apis", "create", _AUDIENCE, "--scopes", "read", env=env)
    created = cli_json("clients", "create", "svc", "--grant", f"{_AUDIENCE}=read", env=env)
    return created["client_id"], created["client_secret"]


def _port(env: dict[str, str]) -> int:
    return int(env["WARDEN_ISSUER"].rsplit(":", 1)[1])


def test_F06_a_node_sigkilled_under_load_fails_only_its_in_flight_requests(cluster_env: dict[str, str],
                                                                           tmp_path: Path) -> None:
    """F06: node A SIGKILLed while four clients spread requests over A and B, moving a request on to
    the other node when a connection is refused (as a load balancer does)."""
    cid, secret = _client(cluster_env)
    a, b = Node(cluster_env, tmp_path, port=_port(cluster_env)), Node(cluster_env, tmp_path)
    threads = 4
    load = None
    try:
        assert wait_until(lambda: a.token(cid, secret).status_code == 200 == b.token(cid, secret).status_code,
                          timeout=10)
        load = Load([a.url, b.url], cid, secret, threads=threads, failover=True, budget=2500)
        assert load.wait_for(100)
        a.kill()
        assert port_free(a.port)
        assert load.wait_for(150)  # the other node carries on alone
        outcomes = load.stop()
        load = None
    finally:
        if load is not None:
            load.stop()
        code_b = b.stop()
    failed = [o for o in outcomes if o.status != 200]
    # Each client loses what it had on the wire to the killed node: the request in flight and, at
    # most, the next one written on its pooled keep-alive connection before the client saw the reset
    # (on a loaded machine the reset can arrive after that write). Nothing else fails.
    assert len(failed) <= 2 * threads, failed
    assert all(o.node == a.url and o.status is None for o in failed), failed  # transport errors, on A only
    assert all(o.status == 200 for o in outcomes if o.node == b.url)
    assert outcomes[-1].node == b.url and outcomes[-1].status == 200
    assert code_b == 0, b.log()[-3000:]


def test_F08_key_rotation_under_load_on_two_nodes_gives_zero_validation_failures(cluster_env: dict[str, str],
                                                                               tmp_path: Path) -> None:
    """F08: `warden keys rotate` while both nodes issue: the key that takes over was published beforehand
    (`keys.publish_lead`), so a resource server that fetched the JWKS before the rotation and never
    refetches (cooldown longer than the test) validates every token of both nodes; one that fetches
    after it still validates the tokens signed before (the retired key stays published)."""
    cid, secret = _client(cluster_env)
    a, b = Node(cluster_env, tmp_path, port=_port(cluster_env)), Node(cluster_env, tmp_path)
    issuer = cluster_env["WARDEN_ISSUER"]
    early = Validator(issuer, _AUDIENCE, jwks_uri=f"{a.url}/oauth2/jwks", refresh_cooldown=600, cache_size=0)
    failures: list[str] = []
    kids: dict[str, set[str]] = {a.url: set(), b.url: set()}
    tokens: list[str] = []
    lock = threading.Lock()

    def validate(resp: httpx.Response) -> None:
        token = resp.json()["access_token"]
        try:
            early.validate(token, scopes=["read"])
        except InvalidToken as exc:
            failures.append(f"{exc}")
        with lock:
            kids[str(resp.url).rsplit("/oauth2", 1)[0]].add(jwt.get_unverified_header(token)["kid"])
            tokens.append(token)

    load = None
    try:
        assert wait_until(lambda: a.token(cid, secret).status_code == 200 == b.token(cid, secret).status_code,
                          timeout=10)
        early.validate(a.token(cid, secret).json()["access_token"])  # fetches the JWKS, once
        load = Load([a.url, b.url], cid, secret, threads=3, budget=3000, extract=validate)
        assert load.wait_for(50)
        with lock:
            before = set().union(*kids.values())
            first_token = tokens[0]
        new_kid = cli_json("keys", "rotate", "--alg", "ES256", env=cluster_env)["activated"][0]
        assert new_kid not in before
        assert wait_until(lambda: all(new_kid in seen for seen in kids.values()), timeout=20), kids
        assert load.wait_for(100)
        outcomes = load.stop()
        load = None
        late = Validator(issuer, _AUDIENCE, jwks_uri=f"{b.url}/oauth2/jwks")  # the JWKS after the rotation
        assert late.validate(first_token, scopes=["read"]).client_id == cid
    finally:
        if load is not None:
            load.stop()
        codes = [a.stop(), b.stop()]
    assert failures == [] and all(o.status == 200 for o in outcomes), (failures[:5], outcomes[-5:])
    assert codes == [0, 0]


def test_F12_a_node_20s_ahead_issues_tokens_accepted_within_the_validator_leeway(cluster_env: dict[str, str],
                                                                                tmp_path: Path) -> None:
    """F12: node B's wall clock reads 20 s ahead (`skewed_warden.py` shifts `time.time` in its process, as
    a drifted host clock would; monotonic time is untouched). Its tokens carry `iat`/`nbf` 20 s in
    the resource server's future: inside the default leeway of 30 s they validate; a resource server
    allowing only 10 s refuses them, saying why. Node A, on time, accepts B's registry and keys."""
    cid, secret = _client(cluster_env)
    a = Node(cluster_env, tmp_path, port=_port(cluster_env))
    b = Node(cluster_env, tmp_path, command=[*SKEWED_WARDEN, "20"])
    try:
        assert wait_until(lambda: a.token(cid, secret).status_code == 200 == b.token(cid, secret).status_code,
                          timeout=10)
        issuer = cluster_env["WARDEN_ISSUER"]
        validator = Validator(issuer, _AUDIENCE, jwks_uri=f"{a.url}/oauth2/jwks")
        strict = Validator(issuer, _AUDIENCE, jwks_uri=f"{a.url}/oauth2/jwks", leeway=10)
        ahead = b.token(cid, secret).json()["access_token"]
        on_time = a.token(cid, secret).json()["access_token"]
        skew = jwt.decode(ahead, options={"verify_signature": False})["iat"] - \
            jwt.decode(on_time, options={"verify_signature": False})["iat"]
        assert 18 <= skew <= 22  # the launcher really moved B's clock
        for token in (ahead, on_time):
            assert validator.validate(token, scopes=["read"]).client_id == cid
        assert strict.validate(on_time).client_id == cid
        with pytest.raises(InvalidToken, match="future"):
            strict.validate(ahead)
    finally:
        codes = [a.stop(), b.stop()]
    assert codes == [0, 0], b.log()[-3000:]
