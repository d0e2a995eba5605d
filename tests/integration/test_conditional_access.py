"""Conditional access per client over HTTP, on both servers: source-address allow-lists (the peer, or
X-Forwarded-For from a trusted proxy only), a per-client token lifetime cap, refusals that look like any
other failed authentication on the wire with the reason in audit and metrics, the admin API fields and
the CLI flags."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from tests.integration.conftest import LiveServer
from tests.integration.test_admin_api import admin_token

from warden.cli.main import main

STACKS = ["asgi", "h1"]


def _claims(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text
    return pyjwt.decode(resp.json()["access_token"], options={"verify_signature": False})


def _failures(server: LiveServer, reason: str) -> float:
    text = server.http.get(f"{server.url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("warden_auth_failures_total{") and f'reason="{reason}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize("stack", STACKS)
def test_a_client_outside_its_allowed_networks_is_refused_like_a_wrong_secret(
        start_server: Callable[..., LiveServer], stack: str) -> None:
    server = start_server(stack=stack)
    api = server.api()
    cid, secret = server.client({api: "read"}, allowed_ips=["10.0.0.0/8", "2001:db8::/32"])
    refused = server.token(cid, secret)
    wrong = server.token(cid, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    assert refused.status_code == wrong.status_code == 401
    assert refused.json() == wrong.json() == {"error": "invalid_client",
                                              "error_description": "client authentication failed"}
    assert refused.headers["www-authenticate"] == wrong.headers["www-authenticate"]
    denied = [e for e in server.audit_events() if e.get("event") == "client.authentication_failed"
              and e.get("client_id") == cid]
    assert [e["reason"] for e in denied] == ["source_not_allowed", "wrong_secret"]
    assert denied[0]["source"] == "127.0.0.1"
    assert _failures(server, "source_not_allowed") == 1
    assert secret not in server.audit_path.read_text()

    server.admin.update_client(cid, allowed_ips=["10.0.0.0/8", "127.0.0.0/8"])
    server.sync()
    assert server.token(cid, secret).status_code == 200
    server.admin.update_client(cid, allowed_ips=[])  # an empty list lifts the restriction
    server.sync()
    assert server.token(cid, secret).status_code == 200


@pytest.mark.parametrize("stack", STACKS)
def test_forwarded_address_counts_only_from_a_trusted_proxy(start_server: Callable[..., LiveServer],
                                                            stack: str) -> None:
    behind = start_server(stack=stack, **{"server.trusted_proxies": ["127.0.0.1"]})
    api = behind.api()
    cid, secret = behind.client({api: "read"}, allowed_ips=["10.0.0.0/8"])
    assert behind.token(cid, secret).status_code == 401  # the proxy itself is not in the list
    ok = behind.http.post(f"{behind.url}/oauth2/token", data={"grant_type": "client_credentials"},
                          auth=(cid, secret), headers={"x-forwarded-for": "192.0.2.9, 10.20.30.40"})
    assert ok.status_code == 200, ok.text  # the hop the trusted proxy saw is the last one
    spoofed = behind.http.post(f"{behind.url}/oauth2/token", data={"grant_type": "client_credentials"},
                               auth=(cid, secret), headers={"x-forwarded-for": "10.0.0.1, 192.0.2.9"})
    assert spoofed.status_code == 401

    direct = start_server(stack=stack)  # no trusted proxy: the header is not believed
    api = direct.api()
    cid, secret = direct.client({api: "read"}, allowed_ips=["10.0.0.0/8"])
    resp = direct.http.post(f"{direct.url}/oauth2/token", data={"grant_type": "client_credentials"},
                            auth=(cid, secret), headers={"x-forwarded-for": "10.0.0.1"})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"


def test_allow_lists_apply_to_introspection_too(server: LiveServer) -> None:
    api = server.api()
    cid, secret = server.client({api: "read"})
    token = server.token(cid, secret).json()["access_token"]
    server.admin.update_client(cid, allowed_ips=["192.0.2.0/24"])
    server.sync()
    resp = server.post("/oauth2/introspect", data={"token": token}, auth=(cid, secret))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"


def test_max_token_lifetime_caps_the_apis_lifetime_and_never_extends_it(server: LiveServer) -> None:
    long_api, short_api = server.api(ttl=3600), server.api(ttl=300)
    cid, secret = server.client({long_api: "read", short_api: "read"}, max_token_lifetime=600)
    capped = server.token(cid, secret, resource=long_api)
    claims = _claims(capped)
    assert capped.json()["expires_in"] == 600 and claims["exp"] - claims["iat"] == 600
    short = server.token(cid, secret, resource=short_api)
    assert short.json()["expires_in"] == 300 and _claims(short)["exp"] - _claims(short)["iat"] == 300
    server.admin.update_client(cid, max_token_lifetime=None)
    server.sync()
    assert server.token(cid, secret, resource=long_api).json()["expires_in"] == 3600


def test_admin_api_sets_and_keeps_conditional_access(server: LiveServer) -> None:
    ident = server.api()
    with httpx.Client(base_url=f"{server.url}/admin/v1", timeout=10,
                      headers={"authorization": f"Bearer {admin_token(server)}"}) as api:
        created = api.post("/clients", json={"name": "ca", "grants": [{"api": ident, "scopes": ["read"]}],
                                             "allowed_ips": ["10.0.0.0/8", "192.0.2.7"], "max_token_lifetime": "10m"})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["allowed_ips"] == ["10.0.0.0/8", "192.0.2.7/32"] and body["max_token_lifetime"] == 600
        assert "allowed_ips" not in body["metadata"] and body["pending_approval"] is False
        cid = body["client_id"]
        # a metadata object that does not name them keeps them
        kept = api.patch(f"/clients/{cid}", json={"metadata": {"dpop_bound_access_tokens": True}})
        assert kept.status_code == 200 and kept.json()["allowed_ips"] == ["10.0.0.0/8", "192.0.2.7/32"]
        assert kept.json()["max_token_lifetime"] == 600 and kept.json()["metadata"]["dpop_bound_access_tokens"]
        cleared = api.patch(f"/clients/{cid}", json={"allowed_ips": [], "max_token_lifetime": None})
        assert cleared.json()["allowed_ips"] == [] and cleared.json()["max_token_lifetime"] is None
        for bad in ({"allowed_ips": ["10.1.2.3/8"]}, {"allowed_ips": ["nope"]}, {"max_token_lifetime": "5s"},
                    {"allowed_ips": "10.0.0.0/8"}):
            resp = api.patch(f"/clients/{cid}", json=bad)
            assert resp.status_code == 400, (bad, resp.text)
            assert resp.headers["content-type"] == "application/problem+json"
            assert "allowed_ips" in resp.json()["detail"] or "max_token_lifetime" in resp.json()["detail"]
        spec = api.get("/openapi.json").json()
        fields = json.dumps(spec)
        assert '"allowed_ips"' in fields and '"max_token_lifetime"' in fields


def test_cli_flags_create_and_update_conditional_access(tmp_path: Path, capsys, monkeypatch,
                                                        start_server: Callable[..., LiveServer]) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("WARDEN_"):
            monkeypatch.delenv(name)
    server = start_server()
    data = ["--data-dir", server.settings.data_dir]
    monkeypatch.setenv("WARDEN_AUDIT_SINK", str(tmp_path / "cli-audit.jsonl"))
    api = server.api()

    def cli(*args: str, expect: int = 0) -> dict:
        code = main([*args, *data])
        out, err = capsys.readouterr()
        assert code == expect, err
        return json.loads(out) if expect == 0 and "--json" in args else {"err": err}

    made = cli("clients", "create", "edge", "--grant", f"{api}=read", "--allowed-ip", "10.0.0.0/8",
               "--allowed-ip", "2001:db8::/32", "--max-token-lifetime", "10m", "--json")
    cid, secret = made["client_id"], made["client_secret"]
    assert made["allowed_ips"] == ["10.0.0.0/8", "2001:db8::/32"] and made["max_token_lifetime"] == 600
    server.wait_for_client(cid)
    assert server.token(cid, secret).status_code == 401
    updated = cli("clients", "update", cid, "--allowed-ip", "127.0.0.1", "--json")
    assert updated["changed"] and updated["allowed_ips"] == ["127.0.0.1/32"] and updated["max_token_lifetime"] == 600
    server.sync()
    resp = server.token(cid, secret)
    assert resp.status_code == 200 and resp.json()["expires_in"] == 600
    updated = cli("clients", "update", cid, "--clear-allowed-ips", "--max-token-lifetime", "none", "--json")
    assert updated["allowed_ips"] == [] and updated["max_token_lifetime"] is None
    assert cli("clients", "update", cid, "--clear-allowed-ips", "--json")["changed"] is False
    for bad, words in ((["--allowed-ip", "10.1.2.3/8"], "host bits"), (["--max-token-lifetime", "soon"], "duration"),
                       (["--max-token-lifetime", "5s"], "max_token_lifetime"),
                       (["--allowed-ip", "10.0.0.0/8", "--clear-allowed-ips"], "not both")):
        err = cli("clients", "update", cid, *bad, expect=2)["err"]
        assert words in err and err.count("\n") == 1, err
    err = cli("clients", "create", "x", "--max-token-lifetime", "none", expect=2)["err"]
    assert "duration" in err
