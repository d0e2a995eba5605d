"""Token Status List over HTTP: every token names an entry, the server publishes signed lists, and
revocation (by token, by jti, by client) shows in them; entries never collide across processes and nodes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.conftest import LiveServer, free_port, wait_until
from tests.integration.test_cli_e2e import Served, cli_env, cli_json, run_cli  # noqa: F401  (cli_env: fixture)

from warden.jose import load_public_jwk, parse_compact
from warden.protocol.status_list import INVALID, VALID, StatusList

FAST = {"status_list.publish_interval": 0.1}


def _claims(token: str) -> dict[str, Any]:
    return parse_compact(token).claims()


def fetch_list(base: str, uri: str, issuer: str) -> StatusList:
    """Fetch a Status List Token the way a resource server must: check type, signature, subject."""
    assert uri.startswith(f"{issuer}/oauth2/status/")
    response = httpx.get(base + uri[len(issuer):], timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/statuslist+jwt"
    assert response.headers["cache-control"].startswith("public, max-age=")
    parsed = parse_compact(response.text)
    assert parsed.header["typ"] == "statuslist+jwt"
    jwks = httpx.get(f"{base}/oauth2/jwks", timeout=5).json()
    jwk = next(k for k in jwks["keys"] if k["kid"] == parsed.header["kid"])
    parsed.verify(load_public_jwk(jwk), (parsed.header["alg"],))
    claims = parsed.claims()
    assert claims["sub"] == uri and claims["ttl"] > 0 and claims["exp"] > claims["iat"]
    return StatusList.decode(claims["status_list"], max_bytes=1 << 20)


def status_of(server: LiveServer, token: str) -> int:
    ref = _claims(token)["status"]["status_list"]
    return fetch_list(server.url, ref["uri"], server.issuer)[ref["idx"]]


def test_every_token_names_its_entry_and_the_list_is_signed_and_served(start_server: Callable[..., LiveServer]):
    server = start_server(**FAST)
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    tokens = [server.token(cid, secret).json()["access_token"] for _ in range(5)]
    refs = [_claims(t)["status"]["status_list"] for t in tokens]
    assert len({(r["uri"], r["idx"]) for r in refs}) == 5
    assert all(status_of(server, t) == VALID for t in tokens)
    meta = httpx.get(f"{server.url}/.well-known/oauth-authorization-server").json()
    aggregation = httpx.get(meta["status_list_aggregation_endpoint"].replace(server.issuer, server.url)).json()
    assert refs[0]["uri"] in aggregation["status_lists"]
    assert httpx.get(f"{server.url}/oauth2/status/999999").status_code == 404
    assert httpx.get(f"{server.url}/oauth2/status/not-a-list").status_code == 404
    assert httpx.post(f"{server.url}/oauth2/status/1").status_code == 405


def test_revoking_a_token_flips_its_entry_and_no_other(start_server: Callable[..., LiveServer]):
    server = start_server(**FAST)
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    keep, revoke = (server.token(cid, secret).json()["access_token"] for _ in range(2))
    assert server.post("/oauth2/revoke", data={"token": revoke}, auth=(cid, secret)).status_code == 200
    assert wait_until(lambda: status_of(server, revoke) == INVALID, timeout=5)
    assert status_of(server, keep) == VALID


def test_revoking_by_jti_alone_flips_the_entry(start_server: Callable[..., LiveServer]):
    server = start_server(**FAST)
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    token = server.token(cid, secret).json()["access_token"]
    server.admin.revoke_jti(_claims(token)["jti"])
    assert wait_until(lambda: status_of(server, token) == INVALID, timeout=5)


def test_revoking_a_client_flips_every_token_it_holds_but_not_later_ones_or_other_clients(
        start_server: Callable[..., LiveServer]):
    server = start_server(**FAST)
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    other, other_secret = server.client({api: "read"})
    held = [server.token(cid, secret).json()["access_token"] for _ in range(20)]
    bystander = server.token(other, other_secret).json()["access_token"]
    server.admin.revoke_client_tokens(cid)
    server.sync()
    assert wait_until(lambda: all(status_of(server, t) == INVALID for t in held), timeout=5)
    assert status_of(server, bystander) == VALID
    # after the revoking second, the client's new tokens come from a new block and stay valid
    assert wait_until(lambda: server.token(cid, secret).status_code == 200, timeout=5)
    fresh = server.token(cid, secret).json()["access_token"]
    assert status_of(server, fresh) == VALID
    assert _claims(fresh)["status"]["status_list"]["idx"] not in {
        _claims(t)["status"]["status_list"]["idx"] for t in held}


def test_tokens_carry_no_status_when_status_lists_are_off(start_server: Callable[..., LiveServer]):
    server = start_server(**{"status_list.enabled": False})
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    assert "status" not in _claims(server.token(cid, secret).json()["access_token"])
    assert "status_list_aggregation_endpoint" not in httpx.get(
        f"{server.url}/.well-known/oauth-authorization-server").json()


@pytest.mark.slow
def test_entries_never_collide_across_workers_and_nodes(cli_env: dict[str, str], postgres_url: str,  # noqa: F811
                                                        make_postgres_schema: Callable[[], str], tmp_path: Path):
    """Two `warden serve --workers 2` nodes on one PostgreSQL, tokens fetched from both at once on fresh
    connections: every (list, index) is unique, and a revocation through one node shows in the other's list."""
    schema = make_postgres_schema()
    sep = "&" if "?" in postgres_url else "?"
    env = dict(cli_env, WARDEN_DATABASE_URL=f"{postgres_url}{sep}options=-csearch_path%3D{schema}",
               WARDEN_KEYS_ENCRYPTION_KEY="q3mCUvYsZyQ1XzX5n1QzY4uQ8i7V7Jm2dB9Y9c5Wc0E",
               WARDEN_STATUS_LIST_PUBLISH_INTERVAL="0.2", WARDEN_LIMITS_CLIENT_RATE="100000")
    ports = [free_port(), free_port()]
    env["WARDEN_ISSUER"] = f"http://127.0.0.1:{ports[0]}"  # one issuer for the cluster, as behind a balancer
    run_cli("apis", "create", "https://api.example", "--scopes", "read", env=env)
    nodes = [Served(env, ports[0], workers=2), Served(env, ports[1], workers=2)]
    try:
        clients = [cli_json("clients", "create", f"svc-{n}", "--grant", "https://api.example=read", env=env)
                   for n in range(3)]
        for c in clients:
            assert wait_until(lambda c=c: all(node.token(c["client_id"], c["client_secret"]).status_code == 200
                                              for node in nodes), timeout=10)

        def fetch(n: int) -> str:
            c, node = clients[n % 3], nodes[n % 2]
            response = node.token(c["client_id"], c["client_secret"])  # a fresh connection each time
            assert response.status_code == 200, response.text
            return str(response.json()["access_token"])

        with ThreadPoolExecutor(max_workers=8) as pool:
            tokens = list(pool.map(fetch, range(400)))
        entries = [(_claims(t)["status"]["status_list"]["uri"], _claims(t)["status"]["status_list"]["idx"])
                   for t in tokens]
        assert len(set(entries)) == len(entries) == 400
        issuer = env["WARDEN_ISSUER"]
        victim = tokens[7]
        c = clients[7 % 3]
        assert httpx.post(f"{nodes[1].url}/oauth2/revoke", data={"token": victim},
                          auth=(c["client_id"], c["client_secret"])).status_code == 200
        uri, idx = entries[7]
        for node in nodes:  # each node renders the list from the shared store
            assert wait_until(lambda node=node: fetch_list(node.url, uri, issuer)[idx] == INVALID, timeout=5)
            published = fetch_list(node.url, uri, issuer)
            assert sum(published[i] for u, i in entries if u == uri) == 1
    finally:
        codes = [node.stop()[0] for node in nodes]
    assert codes == [0, 0]


def _serve_resource(api: str, issuer: str) -> tuple[str, Callable[[], None]]:
    """A Starlette API behind `warden.resource`'s middleware, served by uvicorn on a free port, that
    checks every token's status entry with a 1 s list ttl. Returns its URL and how to stop it."""
    import threading

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from warden.resource import AccessTokenMiddleware, StatusPolicy, Validator

    async def orders(request: Request) -> JSONResponse:
        return JSONResponse({"client": request.scope["warden.claims"].client_id})

    app = Starlette(routes=[Route("/orders", orders)])
    validator = Validator(issuer, api, status_policy=StatusPolicy(min_ttl=0.5, max_ttl=1.0))
    app.add_middleware(AccessTokenMiddleware, validator=validator, scopes=["read"])  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, timeout=10)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{port}", stop


@pytest.mark.slow
def test_a_running_resource_service_refuses_tokens_revoked_through_either_node(
        cli_env: dict[str, str], postgres_url: str,  # noqa: F811
        make_postgres_schema: Callable[[], str]):
    """Issue 12's cluster case: two `warden serve` nodes on one PostgreSQL; a resource service using
    `warden.resource` accepts tokens from both, then refuses, within the list ttl and with no call per
    token, one revoked by `jti` through node B and every token of a client revoked through the CLI,
    while another client's token stays good."""
    schema = make_postgres_schema()
    sep = "&" if "?" in postgres_url else "?"
    env = dict(cli_env, WARDEN_DATABASE_URL=f"{postgres_url}{sep}options=-csearch_path%3D{schema}",
               WARDEN_KEYS_ENCRYPTION_KEY="q3mCUvYsZyQ1XzX5n1QzY4uQ8i7V7Jm2dB9Y9c5Wc0E",
               WARDEN_STATUS_LIST_PUBLISH_INTERVAL="0.2", WARDEN_STATUS_LIST_TTL="1")
    ports = [free_port(), free_port()]
    env["WARDEN_ISSUER"] = f"http://127.0.0.1:{ports[0]}"  # one issuer for the cluster, as behind a balancer
    api = "https://orders.example"
    run_cli("apis", "create", api, "--scopes", "read", env=env)
    nodes = [Served(env, ports[0], workers=1), Served(env, ports[1], workers=1)]
    stop_resource = None
    try:
        made = [cli_json("clients", "create", f"svc-{n}", "--grant", f"{api}=read", env=env) for n in range(2)]
        for c in made:
            assert wait_until(lambda c=c: all(node.token(c["client_id"], c["client_secret"]).status_code == 200
                                              for node in nodes), timeout=10)
        first, second = made
        by_jti = nodes[0].token(first["client_id"], first["client_secret"]).json()["access_token"]
        by_client = [node.token(first["client_id"], first["client_secret"]).json()["access_token"] for node in nodes]
        bystander = nodes[1].token(second["client_id"], second["client_secret"]).json()["access_token"]
        url, stop_resource = _serve_resource(api, env["WARDEN_ISSUER"])

        def status(token: str) -> int:
            return httpx.get(f"{url}/orders", headers={"authorization": f"Bearer {token}"}, timeout=5).status_code

        assert [status(t) for t in (by_jti, *by_client, bystander)] == [200, 200, 200, 200]
        jti = _claims(by_jti)["jti"]
        run_cli("tokens", "revoke", "--jti", jti, env=env)
        assert wait_until(lambda: status(by_jti) == 401, timeout=5)
        assert [status(t) for t in (*by_client, bystander)] == [200, 200, 200]
        assert httpx.post(f"{nodes[1].url}/oauth2/introspect", data={"token": by_jti},
                          auth=(first["client_id"], first["client_secret"])).json() == {"active": False}
        run_cli("tokens", "revoke", "--client", first["client_id"], env=env)
        assert wait_until(lambda: [status(t) for t in by_client] == [401, 401], timeout=5)
        assert status(bystander) == 200
    finally:
        if stop_resource is not None:
            stop_resource()
        codes = [node.stop()[0] for node in nodes]
    assert codes == [0, 0]


# -- at the resource server ------------------------------------------------------------------------
def _resource_server(server: LiveServer, api: str, **policy: Any) -> Any:
    from warden.resource import StatusPolicy, Validator
    return Validator(server.issuer, api, status_policy=StatusPolicy(**policy))


def test_a_resource_server_refuses_a_revoked_token_within_the_list_ttl(start_server: Callable[..., LiveServer]):
    """Revoked at the server, then refused by a `warden.resource` validator that had the token cached."""
    from warden.resource import InvalidToken
    server = start_server(**FAST, **{"status_list.ttl": 1})
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    token = server.token(cid, secret, resource=api).json()["access_token"]
    other = server.token(cid, secret, resource=api).json()["access_token"]
    validator = _resource_server(server, api, min_ttl=0.5, max_ttl=1.0)
    assert validator.validate(token, scopes=["read"]).client_id == cid  # cached from here on
    fetches = validator.status.fetches
    for _ in range(100):
        validator.validate(token)
    assert validator.status.fetches - fetches <= 1  # no call per token
    assert server.post("/oauth2/revoke", data={"token": token}, auth=(cid, secret)).status_code == 200

    def refused() -> bool:
        try:
            validator.validate(token)
        except InvalidToken as exc:
            assert exc.reason == "revoked"
            return True
        return False

    assert wait_until(refused, timeout=5)
    assert validator.validate(other).client_id == cid


def test_the_async_path_checks_status_too(start_server: Callable[..., LiveServer]):
    from warden.resource import InvalidToken
    server = start_server(**FAST)
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    token = server.token(cid, secret, resource=api).json()["access_token"]
    server.admin.revoke_client_tokens(cid)
    server.sync()
    time.sleep(0.3)  # past the publish interval
    validator = _resource_server(server, api)
    with pytest.raises(InvalidToken, match="revoked"):
        asyncio.run(validator.avalidate(token))


def test_when_the_list_cannot_be_had_the_policy_decides(start_server: Callable[..., LiveServer]):
    from warden.resource import TemporarilyUnavailable
    server = start_server(**FAST)
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    token = server.token(cid, secret, resource=api).json()["access_token"]
    claims = _claims(token)
    # a validator whose HTTP client cannot reach the list (but has the keys): closed by default
    closed = _resource_server(server, api)
    closed.jwks.refresh()
    closed.status._http_client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    with pytest.raises(TemporarilyUnavailable):
        closed.validate(token)
    opened = _resource_server(server, api, on_failure="open")
    opened.jwks.refresh()
    opened.status._http_client = closed.status._http_client
    assert opened.validate(token).client_id == claims["client_id"]


def test_a_list_from_elsewhere_or_forged_is_never_believed(start_server: Callable[..., LiveServer]):
    from warden.jose import encode_header, generate_private_key, sign_compact
    from warden.protocol.status_list import StatusList
    from warden.resource import TemporarilyUnavailable
    server = start_server(**FAST)
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    token = server.token(cid, secret, resource=api).json()["access_token"]
    uri = _claims(token)["status"]["status_list"]["uri"]
    all_valid = StatusList(1 << 20)
    forger = generate_private_key("ES256")
    claims = {"sub": uri, "iat": 1, "exp": 2**40, "ttl": 60, "status_list": all_valid.encode()}
    forged = sign_compact(encode_header({"alg": "ES256", "kid": "x", "typ": "statuslist+jwt"}),
                          json.dumps(claims).encode(), forger, "ES256")
    # the real list marks the token revoked; a forged all-valid list must not override that
    server.admin.revoke_jti(_claims(token)["jti"])
    validator = _resource_server(server, api)
    validator.jwks.refresh()
    validator.status._http_client = httpx.Client(transport=httpx.MockTransport(
        lambda r: httpx.Response(200, content=forged.encode(), headers={"content-type": "application/statuslist+jwt"})))
    with pytest.raises(TemporarilyUnavailable):  # closed: a list that fails verification is no list
        validator.validate(token)
