"""Dynamic client registration (RFC 7591) and management (RFC 7592) over HTTP, on both servers and on
PostgreSQL: initial access tokens and their policy, refusals per §3.2.2, the approval gate, max uses
under concurrency, and the CLI."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.integration.conftest import LiveServer, free_port, wait_until
from tests.integration.test_admin_api import admin_token
from tests.integration.test_cli_e2e import Served, cli_json, run_cli
from tests.integration.test_private_key_jwt import JWKS, KEY, assertion, post

from warden.cli.main import main
from warden.core.clock import FixedClock
from warden.services.admin import Admin, GrantSpec
from warden.services.kek import load_kek

BEARER_CHALLENGE = 'Bearer error="invalid_token"'


def initial_token(server: LiveServer, grants: dict[str, str], **options: Any) -> str:
    _, plaintext = server.admin.create_registration_token(
        [GrantSpec(api, tuple(scopes.split())) for api, scopes in grants.items()], **options)
    return plaintext


def register(server: LiveServer, token: str | None, body: dict[str, Any] | None = None,
             **headers: str) -> httpx.Response:
    auth = {"authorization": f"Bearer {token}"} if token is not None else {}
    return server.http.post(f"{server.url}/oauth2/register", json=body or {}, headers={**auth, **headers})


def manage(server: LiveServer, method: str, uri: str, rat: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return server.http.request(method, uri, headers={"authorization": f"Bearer {rat}"},
                               **({"json": body} if body is not None else {}))


def denied(server: LiveServer) -> list[str]:
    return [e["reason"] for e in server.audit_events() if e.get("event") == "client.registration_denied"]


def test_register_use_read_update_and_delete_a_client(server: LiveServer) -> None:
    api, other = server.api("read write admin"), server.api("read")
    iat = initial_token(server, {api: "read write", other: "read"}, max_uses=5)
    meta = server.http.get(f"{server.url}/.well-known/oauth-authorization-server").json()
    assert meta["registration_endpoint"] == f"{server.issuer}/oauth2/register"

    resp = register(server, iat, {"client_name": "svc", "scope": "read", "resources": [api],
                                  "grant_types": ["client_credentials"], "contacts": ["ops@example.com"]})
    assert resp.status_code == 201, resp.text
    assert resp.headers["cache-control"] == "no-store" and resp.headers["pragma"] == "no-cache"
    info = resp.json()
    cid, secret, rat, uri = (info["client_id"], info["client_secret"], info["registration_access_token"],
                             info["registration_client_uri"])
    assert secret.startswith("wsec_") and rat.startswith("wrat_") and info["client_secret_expires_at"] == 0
    assert uri == f"{server.issuer}/oauth2/register/{cid}" and abs(info["client_id_issued_at"] - time.time()) < 60
    assert info["scope"] == "read" and info["resources"] == [api] and "contacts" not in info
    assert info["token_endpoint_auth_method"] == "client_secret_basic"

    # usable at once on the server that registered it
    token = server.token(cid, secret, resource=api)
    assert token.status_code == 200 and token.json()["scope"] == "read"
    assert server.token(cid, secret, resource=api, scope="write").json()["error"] == "invalid_scope"

    read = manage(server, "GET", uri, rat)
    assert read.status_code == 200 and read.headers["cache-control"] == "no-store"
    assert read.json()["client_id"] == cid and read.json()["scope"] == "read" and "client_secret" not in read.json()
    assert read.json()["registration_access_token"] == rat

    updated = manage(server, "PUT", uri, rat, {"client_id": cid, "client_secret": secret, "client_name": "svc2",
                                               "scope": "read write"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["scope"] == "read write" and updated.json()["client_name"] == "svc2"
    assert updated.json()["resources"] == [api, other]  # scope "read" is granted at both
    server.sync()
    assert server.token(cid, secret, resource=api, scope="write").status_code == 200

    # T70: an update is held to the registration's policy and cannot switch to another auth method
    for body, words in (({"client_id": cid, "scope": "admin"}, "scope admin"),
                        ({"client_id": "someone-else"}, "client_id"),
                        ({"client_id": cid, "client_secret": "wsec_" + "A" * 42}, "client_secret"),
                        ({"client_id": cid, "token_endpoint_auth_method": "client_secret_post"},
                         "token_endpoint_auth_method")):
        refused = manage(server, "PUT", uri, rat, body)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_client_metadata", refused.text
        assert words in refused.json()["error_description"]

    other_client = register(server, iat).json()
    for bad in ("wrat_" + "A" * 42, "nonsense", other_client["registration_access_token"]):
        resp = manage(server, "GET", uri, bad)
        assert resp.status_code == 401 and resp.headers["www-authenticate"] == BEARER_CHALLENGE
    assert server.http.get(uri).status_code == 401
    assert manage(server, "POST", uri, rat).status_code == 405

    assert manage(server, "DELETE", uri, rat).status_code == 204
    assert manage(server, "GET", uri, rat).status_code == 401
    server.sync()
    assert server.token(cid, secret).status_code == 401

    events = server.audit_events()
    registered = [e for e in events if e.get("event") == "client.registered"]
    assert {e["client_id"] for e in registered} == {cid, other_client["client_id"]}
    assert all(e["actor"].startswith("registration:rt_") for e in registered)
    text = server.audit_path.read_text()
    for credential in (iat, secret, rat, other_client["client_secret"]):
        assert credential not in text


def test_registration_without_a_valid_initial_access_token_is_refused(server: LiveServer) -> None:
    api = server.api()
    past = Admin(server.admin.store, load_kek(None, server.settings.data_dir), FixedClock(time.time() - 100),
                 server.admin_audit)
    _, expired = past.create_registration_token([GrantSpec(api, ("read",))], ttl=10)
    revoked_token, revoked = server.admin.create_registration_token([GrantSpec(api, ("read",))])
    server.admin.revoke_registration_token(revoked_token.token_id)
    once = initial_token(server, {api: "read"}, max_uses=1)
    assert register(server, once).status_code == 201
    cases = [None, "wiat_" + "A" * 42, once[:-1] + ("A" if once[-1] != "A" else "B"), expired, revoked, once]
    for token in cases:
        resp = register(server, token)
        assert resp.status_code == 401, (token, resp.text)
        assert resp.headers["www-authenticate"] == BEARER_CHALLENGE and resp.json()["error"] == "invalid_token"
    basic = server.http.post(f"{server.url}/oauth2/register", json={}, auth=("a", "b"))
    assert basic.status_code == 401
    reasons = denied(server)
    for reason in ("registration_no_token", "registration_unknown_token", "registration_token_expired",
                   "registration_token_revoked", "registration_token_used_up"):
        assert reason in reasons
    assert once not in server.audit_path.read_text()


def test_metadata_refusals_follow_rfc7591_3_2_2(server: LiveServer) -> None:
    api, elsewhere = server.api("read write"), server.api("read")
    iat = initial_token(server, {api: "read"})
    cases = [({"scope": "write"}, "scope write"), ({"resources": [elsewhere]}, "resource"),
             ({"token_endpoint_auth_method": "none"}, "token_endpoint_auth_method"),
             ({"token_endpoint_auth_method": "private_key_jwt"}, "jwks"),
             ({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "AAAA"}]}},
              "JWKS"),
             ({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://evil.example/jwks"}, "https"),
             ({"redirect_uris": ["https://app.example/cb"]}, "redirect_uris"),
             ({"grant_types": ["authorization_code"]}, "grant_types")]
    for body, words in cases:
        resp = register(server, iat, body)
        assert resp.status_code == 400, (body, resp.text)
        assert resp.json()["error"] == "invalid_client_metadata" and words in resp.json()["error_description"], body
    for raw, content_type in ((b'{"scope": "read", "scope": "write"}', "application/json"), (b"{", "application/json"),
                              (b"{}", "application/x-www-form-urlencoded")):
        resp = server.http.post(f"{server.url}/oauth2/register", content=raw,
                                headers={"authorization": f"Bearer {iat}", "content-type": content_type})
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    assert server.http.get(f"{server.url}/oauth2/register").status_code == 405
    assert "registration_policy" in denied(server) and "client_metadata" in denied(server)
    assert server.admin.registration_tokens()[-1].uses == 0  # refusals spend no use


def test_private_key_jwt_clients_register_with_jwks_and_authenticate_with_assertions(server: LiveServer) -> None:
    api = server.api("read")
    iat = initial_token(server, {api: "read"}, tenant="acme")
    resp = register(server, iat, {"token_endpoint_auth_method": "private_key_jwt", "jwks": JWKS,
                                  "dpop_bound_access_tokens": False})
    assert resp.status_code == 201, resp.text
    info = resp.json()
    assert "client_secret" not in info and info["jwks"] == JWKS
    token = post(server, "/oauth2/token", info["client_id"], assertion(server, info["client_id"], KEY))
    assert token.status_code == 200, token.text
    assert server.admin.client(info["client_id"]).tenant == "acme"


def test_clients_registered_with_approval_are_refused_until_approved(server: LiveServer) -> None:
    api = server.api()
    iat = initial_token(server, {api: "read"}, approval=True)
    info = register(server, iat, {"client_name": "waiting"}).json()
    cid, secret = info["client_id"], info["client_secret"]
    refused = server.token(cid, secret)
    assert refused.status_code == 401 and refused.json() == {"error": "invalid_client",
                                                             "error_description": "client authentication failed"}
    failures = [e for e in server.audit_events() if e.get("event") == "client.authentication_failed"]
    assert failures[-1]["reason"] == "client_pending_approval" and failures[-1]["client_id"] == cid
    # the client may still read and update its registration, but cannot approve itself
    rat = info["registration_access_token"]
    manage(server, "PUT", info["registration_client_uri"], rat, {"client_id": cid, "client_name": "still waiting"})
    server.sync()
    assert server.token(cid, secret).status_code == 401
    with httpx.Client(base_url=f"{server.url}/admin/v1", timeout=10,
                      headers={"authorization": f"Bearer {admin_token(server)}"}) as admin:
        pending = admin.get("/clients", params={"pending": "true"}).json()["items"]
        assert [c["client_id"] for c in pending] == [cid] and pending[0]["pending_approval"]
        approved = admin.post(f"/clients/{cid}/approve")
        assert approved.status_code == 200 and approved.json()["changed"] and not approved.json()["pending_approval"]
        assert admin.post(f"/clients/{cid}/approve").json()["changed"] is False
        assert admin.get("/clients", params={"pending": "true"}).json()["items"] == []
    server.sync()
    assert server.token(cid, secret).status_code == 200
    assert any(e.get("event") == "client.approved" and e["client_id"] == cid for e in server.audit_events())


def test_a_disabled_clients_registration_access_token_cannot_change_it(server: LiveServer) -> None:
    """T71: a registration access token cannot re-enable (or otherwise touch) a disabled client."""
    api = server.api()
    info = register(server, initial_token(server, {api: "read"}), {}).json()
    server.admin.update_client(info["client_id"], enabled=False)
    uri, rat = info["registration_client_uri"], info["registration_access_token"]
    assert manage(server, "PUT", uri, rat, {"client_id": info["client_id"]}).status_code == 401
    assert manage(server, "DELETE", uri, rat).status_code == 401
    assert server.admin.client(info["client_id"]).enabled is False


@pytest.mark.postgres
def test_concurrent_registrations_on_postgresql_never_exceed_max_uses(start_server: Callable[..., LiveServer]) -> None:
    server = start_server("postgresql")
    api = server.api()
    iat = initial_token(server, {api: "read"}, max_uses=3)
    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(lambda _: httpx.post(f"{server.url}/oauth2/register", json={}, timeout=20,
                                                   headers={"authorization": f"Bearer {iat}"}).status_code,
                              range(12)))
    assert sorted(codes) == [201] * 3 + [401] * 9
    assert server.admin.registration_tokens()[0].uses == 3
    assert len([c for c in server.admin.store.load_clients() if c.name == "registered client"]) == 3


def test_registration_tokens_and_approval_from_the_cli(tmp_path: Path, capsys, monkeypatch,
                                                       start_server: Callable[..., LiveServer]) -> None:
    for name in list(os.environ):
        if name.startswith("WARDEN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WARDEN_AUDIT_SINK", str(tmp_path / "cli-audit.jsonl"))
    server = start_server()
    api = server.api()

    def cli(*args: str, expect: int = 0) -> Any:
        code = main([*args, "--data-dir", server.settings.data_dir])
        out, err = capsys.readouterr()
        assert code == expect, err
        return json.loads(out) if expect == 0 and "--json" in args else (out, err)

    made = cli("registration-tokens", "create", "--grant", f"{api}=read", "--max-uses", "2", "--ttl", "1d",
               "--tenant", "acme", "--approval", "--json")
    iat = made["initial_access_token"]
    assert iat.startswith("wiat_") and made["state"] == "active" and made["max_uses"] == 2 and made["approval"]
    info = register(server, iat, {"client_name": "from-cli"}).json()
    cid = info["client_id"]
    listed = cli("registration-tokens", "list", "--json")
    assert [(t["token_id"], t["uses"]) for t in listed] == [(made["token_id"], 1)]
    assert "initial_access_token" not in listed[0] and iat not in json.dumps(listed)
    text, _ = cli("registration-tokens", "list")
    assert made["token_id"] in text and "1/2" in text
    assert [c["client_id"] for c in cli("clients", "list", "--pending", "--json")] == [cid]
    assert server.token(cid, info["client_secret"]).status_code == 401
    assert cli("clients", "approve", cid, "--json") == {"client_id": cid, "approved": True}
    assert cli("clients", "list", "--pending", "--json") == []
    server.sync()
    assert server.token(cid, info["client_secret"]).status_code == 200
    cli("registration-tokens", "revoke", made["token_id"])
    assert register(server, iat).status_code == 401
    assert cli("registration-tokens", "list", "--json")[0]["state"] == "revoked"
    _, err = cli("registration-tokens", "revoke", "rt_missing", expect=1)
    assert err.count("\n") == 1
    _, err = cli("registration-tokens", "create", "--grant", "https://unknown.example=read", expect=2)
    assert "unknown API" in err and err.count("\n") == 1
    _, err = cli("registration-tokens", "create", "--grant", f"{api}=read", "--max-uses", "0", expect=2)
    assert "--max-uses" in err
    _, err = cli("clients", "approve", "nobody", expect=1)
    assert "nobody" in err


@pytest.mark.slow
def test_a_client_registered_on_one_worker_becomes_usable_on_every_worker(tmp_path: Path) -> None:
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    cli_env |= {"WARDEN_DATA_DIR": str(tmp_path / "data"), "WARDEN_AUDIT_SINK": str(tmp_path / "audit.jsonl"),
                "WARDEN_REGISTRY_POLL_INTERVAL": "0.25"}
    run_cli("init", env=cli_env)
    cli_json("apis", "create", "https://api.example", "--scopes", "read", env=cli_env)
    iat = cli_json("registration-tokens", "create", "--grant", "https://api.example=read", env=cli_env)[
        "initial_access_token"]
    server = Served(cli_env, free_port(), workers=2)
    try:
        infos = [httpx.post(f"{server.url}/oauth2/register", json={}, headers={"authorization": f"Bearer {iat}"},
                            timeout=10).json() for _ in range(4)]
        for info in infos:
            # fresh connections, so the kernel spreads them over both workers; each polls the store on its own
            cid, secret = info["client_id"], info["client_secret"]
            assert wait_until(lambda cid=cid, secret=secret: all(
                server.token(cid, secret).status_code == 200 for _ in range(8)), timeout=10)
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert iat not in err and all(info["client_secret"] not in err for info in infos)


def test_registration_tokens_through_the_admin_api(server: LiveServer) -> None:
    api = server.api("read write")
    with httpx.Client(base_url=f"{server.url}/admin/v1", timeout=10,
                      headers={"authorization": f"Bearer {admin_token(server)}"}) as admin:
        made = admin.post("/registration-tokens", json={"grants": [{"api": api, "scopes": ["read"]}], "max_uses": 1,
                                                        "ttl": "1h", "tenant": "acme", "approval": True})
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["initial_access_token"].startswith("wiat_") and body["state"] == "active"
        assert body["grants"] == [{"api": api, "scopes": ["read"]}] and body["max_uses"] == 1
        assert body["created_by"].startswith("client:")
        assert register(server, body["initial_access_token"]).status_code == 201
        listed = admin.get("/registration-tokens").json()["items"]
        assert [(t["token_id"], t["state"], t["uses"]) for t in listed] == [(body["token_id"], "used_up", 1)]
        assert "initial_access_token" not in listed[0]
        for bad in ({"grants": []}, {"grants": [{"api": api, "scopes": ["admin"]}]}, {"grants": [], "max_uses": 0},
                    {"grants": [{"api": "https://nope.example", "scopes": ["read"]}]}, {"max_uses": 2}):
            resp = admin.post("/registration-tokens", json=bad)
            assert resp.status_code == 400 and resp.headers["content-type"] == "application/problem+json", bad
        assert admin.delete(f"/registration-tokens/{body['token_id']}").status_code == 204
        assert admin.get("/registration-tokens").json()["items"][0]["state"] == "revoked"
        assert admin.delete("/registration-tokens/rt_missing").status_code == 404
    assert body["initial_access_token"] not in server.audit_path.read_text()


_members = st.dictionaries(
    st.sampled_from(["token_endpoint_auth_method", "client_name", "scope", "resources", "grant_types",
                     "response_types", "redirect_uris", "jwks", "jwks_uri", "dpop_bound_access_tokens", "client_id",
                     "client_secret", "contacts"]),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30)
                 | st.sampled_from(["client_secret_post", "private_key_jwt", "read", "client_credentials"]),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                 max_leaves=12), max_size=6)


@pytest.fixture
def fuzz_target() -> dict[str, Any]:
    return {}  # function-scoped: hypothesis runs every example of one test against what it holds


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_members)
def test_generated_registration_bodies_never_5xx_and_store_nothing_when_refused(
        start_server: Callable[..., LiveServer], fuzz_target: dict[str, Any], body: dict[str, Any]) -> None:
    if "server" not in fuzz_target:  # one server (Warden's own, as `warden serve` runs) for every example
        server = start_server(stack="h1")
        api = server.api("read write")
        fuzz_target |= {"server": server, "api": api, "token": initial_token(server, {api: "read write"})}
    server, token = fuzz_target["server"], fuzz_target["token"]
    if isinstance(body.get("resources"), list) and body["resources"]:
        body["resources"] = [fuzz_target["api"]] + body["resources"][1:]
    before = len(server.admin.store.load_clients())
    resp = register(server, token, body)
    assert resp.status_code in (201, 400), resp.text
    if resp.status_code == 400:
        assert resp.json()["error"] in ("invalid_client_metadata", "invalid_request")
        assert len(server.admin.store.load_clients()) == before
    else:
        assert resp.json()["client_id"] in {c.client_id for c in server.admin.store.load_clients()}


def test_failed_token_presentations_are_throttled_per_source(start_server: Callable[..., LiveServer]) -> None:
    server = start_server(**{"limits.failed_auth_per_minute": 3})
    api = server.api()
    iat = initial_token(server, {api: "read"})
    for _ in range(3):
        assert register(server, "wiat_" + "A" * 42).status_code == 401
    throttled = register(server, iat)  # the budget is spent: not even a good token is looked at
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    assert throttled.json()["error"] == "slow_down"
    assert server.admin.registration_tokens()[0].uses == 0
    assert "failed_auth_throttled" in denied(server)
