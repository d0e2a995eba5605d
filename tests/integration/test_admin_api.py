"""Admin REST API (/admin/v1) on the real server, authorised by Warden's own tokens."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import quote

import httpx
import jwt as pyjwt
import pytest
from tests.integration.conftest import LiveServer

from warden.core.api import Api
from warden.errors import ConfigError
from warden.jose import generate_private_key, public_jwk


def admin_token(server: LiveServer, scope: str = "warden:admin") -> str:
    admin_api = f"{server.issuer}/admin/v1"
    cid, secret = server.client({admin_api: scope}, name="ops")
    resp = server.token(cid, secret, resource=admin_api)
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


@pytest.fixture
def api(server: LiveServer) -> httpx.Client:
    client = httpx.Client(base_url=f"{server.url}/admin/v1", headers={"authorization": f"Bearer {admin_token(server)}"},
                          timeout=10)
    yield client
    client.close()


def test_manage_apis_and_clients(server: LiveServer, api: httpx.Client):
    ident = "https://orders.example"
    resp = api.put(f"/apis/{quote(ident, safe='')}", json={"scopes": ["read", "write"], "ttl": "10m"})
    assert resp.status_code == 200 and resp.json()["ttl"] == 600
    assert ident in [a["identifier"] for a in api.get("/apis").json()["items"]]
    created = api.post("/clients", json={"name": "billing", "grants": [{"api": ident, "scopes": ["read"]}],
                                         "tenant": "acme"})
    assert created.status_code == 201 and created.json()["client_secret"].startswith("wsec_")
    cid, secret = created.json()["client_id"], created.json()["client_secret"]
    server.wait_for_client(cid)
    assert server.token(cid, secret).status_code == 200
    shown = api.get(f"/clients/{cid}").json()
    assert shown["tenant"] == "acme" and "client_secret" not in shown
    patched = api.patch(f"/clients/{cid}", json={"enabled": False})
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    server.sync()
    assert server.token(cid, secret).status_code == 401
    rotated = api.post(f"/clients/{cid}/secrets", json={"grace": "0s"}).json()
    secrets = api.get(f"/clients/{cid}/secrets").json()["items"]
    assert len(secrets) == 2 and all(rotated["client_secret"] not in str(s) for s in secrets)
    assert api.delete(f"/clients/{cid}/secrets/{secrets[0]['secret_id']}").status_code == 204
    assert api.delete(f"/apis/{quote(ident, safe='')}").status_code == 409  # still granted
    assert api.delete(f"/clients/{cid}").status_code == 204
    assert api.get(f"/clients/{cid}").status_code == 404
    assert api.delete(f"/apis/{quote(ident, safe='')}").status_code == 204
    actors = {e.get("actor") for e in server.audit_events() if e["event"].startswith("client.")}
    assert any(a and a.startswith("client:") for a in actors)


def test_private_key_jwt_client_registered_through_the_api(server: LiveServer, api: httpx.Client):
    ident = server.api("read")
    key = generate_private_key("ES256")
    created = api.post("/clients", json={"name": "signer", "auth_method": "private_key_jwt",
                                         "grants": [{"api": ident, "scopes": ["read"]}],
                                         "metadata": {"jwks": {"keys": [public_jwk(key, kid="k1", alg="ES256")]}}})
    assert created.status_code == 201, created.text
    assert "client_secret" not in created.json()
    cid = created.json()["client_id"]
    server.wait_for_client(cid)
    now = int(time.time())
    assertion = pyjwt.encode({"iss": cid, "sub": cid, "aud": server.issuer, "exp": now + 60, "jti": uuid.uuid4().hex},
                             key, algorithm="ES256", headers={"kid": "k1"})
    resp = server.post("/oauth2/token", data={"grant_type": "client_credentials", "client_assertion": assertion,
                                              "client_assertion_type":
                                                  "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
    assert resp.status_code == 200
    bad = api.post("/clients", json={"name": "x", "auth_method": "private_key_jwt",
                                     "metadata": {"jwks": {"keys": [dict(public_jwk(key), d="AAAA")]}}})
    assert bad.status_code == 400 and "private key" in bad.json()["detail"]


def test_keys_and_token_revocation(server: LiveServer, api: httpx.Client):
    assert {k["state"] for k in api.get("/keys").json()["items"]} == {"active", "next"}
    assert api.post("/keys/rotate", json={"algs": ["EdDSA"]}).json()["activated"]
    ident = server.api("read")
    cid, secret = server.client({ident: "read"})
    token = server.token(cid, secret).json()["access_token"]
    jti = pyjwt.decode(token, options={"verify_signature": False})["jti"]
    assert api.post("/tokens/revoke", json={"jti": jti}).status_code == 200
    assert api.post("/tokens/revoke", json={"client_id": cid}).status_code == 200
    assert api.post("/tokens/revoke", json={}).status_code == 400


def test_authorisation(server: LiveServer):
    base = f"{server.url}/admin/v1"
    assert httpx.get(f"{base}/clients").status_code == 401
    assert httpx.get(f"{base}/clients", headers={"authorization": "Bearer nonsense"}).status_code == 401
    other = server.api("read")
    cid, secret = server.client({other: "read"})
    wrong_audience = server.token(cid, secret).json()["access_token"]
    resp = httpx.get(f"{base}/clients", headers={"authorization": f"Bearer {wrong_audience}"})
    assert resp.status_code == 401 and "www-authenticate" in resp.headers
    reader = admin_token(server, "warden:admin:read")
    headers = {"authorization": f"Bearer {reader}"}
    assert httpx.get(f"{base}/clients", headers=headers).status_code == 200
    forbidden = httpx.post(f"{base}/clients", headers=headers, json={"name": "x"})
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "insufficient_scope"


def test_bad_requests(server: LiveServer, api: httpx.Client):
    assert api.post("/clients", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    assert api.post("/clients", content=b"name=x", headers={"content-type": "text/plain"}).status_code == 400
    assert api.post("/clients", json={"name": "x", "bogus": 1}).status_code == 400
    assert api.post("/clients", json=["not", "an", "object"]).status_code == 400
    assert api.put("/apis/not-a-uri", json={"scopes": ["r"]}).status_code == 400
    assert api.get("/nothing-here").status_code == 404
    assert api.delete("/keys").status_code == 405
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1") and "/clients" in spec["paths"]


def _mint(server: LiveServer, client_id: str, aud: object, scope: str) -> str:
    """A token signed in-process with the server's active key, as only the server could sign it."""
    now = int(time.time())
    payload = {"iss": server.issuer, "sub": client_id, "client_id": client_id, "aud": aud, "scope": scope,
               "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    signer = server.app.runtime.registry.signers["ES256"]
    return signer.compact.sign(json.dumps(payload, separators=(",", ":")).encode())


def test_admin_read_access_cannot_become_full_admin_through_another_api(server: LiveServer):
    """Issue 8 finding 2: warden:admin:read on the admin API plus a scope named warden:admin on another
    API must not add up to writing through /admin/v1."""
    admin_api, base = f"{server.issuer}/admin/v1", f"{server.url}/admin/v1"
    full = {"authorization": f"Bearer {admin_token(server)}"}
    # 1. no ordinary API can define a scope in Warden's namespace (admin API, and the shared service)
    for scopes in (["warden:admin"], ["read", "Warden:Admin"], ["warden:admin:read"], ["warden:x"]):
        resp = httpx.put(f"{base}/apis/{quote('https://other.example', safe='')}", json={"scopes": scopes},
                         headers=full)
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_request", scopes
        assert "reserved" in resp.json()["detail"]
    assert "https://other.example" not in [a["identifier"] for a in httpx.get(f"{base}/apis", headers=full).json()["items"]]
    with pytest.raises(ConfigError, match="reserved"):
        server.admin.save_api("https://other.example", ["warden:admin"])
    # 2. a store written before that rule: another API defines warden:admin and the client holds it there
    other = f"https://legacy-{uuid.uuid4().hex[:8]}.example"
    server.admin.store.save_api(Api(other, ("warden:admin", "read")))  # bypasses validation, as old data would
    cid, secret = server.client({admin_api: "warden:admin:read", other: "warden:admin"})
    for data in ({"scope": "warden:admin:read warden:admin"}, {"scope": "warden:admin"}, {}):
        resp = server.token(cid, secret, resource=[admin_api, other], **data)
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope", (data, resp.text)
    reader = server.token(cid, secret, resource=admin_api).json()
    assert reader["scope"] == "warden:admin:read"
    write = httpx.post(f"{base}/clients", json={"name": "x"}, headers={"authorization": f"Bearer {reader['access_token']}"})
    assert write.status_code == 403 and write.json()["error"] == "insufficient_scope"
    # 3. even signed by the server itself, a token naming another audience is refused by /admin/v1
    for aud in ([admin_api, other], [other, admin_api], [admin_api, admin_api], other):
        token = _mint(server, cid, aud, "warden:admin warden:admin:read")
        for method, kwargs in (("GET", {}), ("POST", {"json": {"name": "escalated"}})):
            resp = httpx.request(method, f"{base}/clients", headers={"authorization": f"Bearer {token}"}, **kwargs)
            assert resp.status_code == 401 and resp.json()["error"] == "invalid_token", (aud, method, resp.text)
            assert resp.headers["www-authenticate"].startswith("Bearer")
    assert "escalated" not in [c["name"] for c in httpx.get(f"{base}/clients", headers=full).json()["items"]]
    # the sole audience, as a string or a one-member array, is what the admin API accepts
    for aud in (admin_api, [admin_api]):
        token = _mint(server, cid, aud, "warden:admin:read")
        assert httpx.get(f"{base}/clients", headers={"authorization": f"Bearer {token}"}).status_code == 200, aud


def test_a_store_that_already_holds_a_warden_scope_on_another_api_is_not_exploitable(start_server, caplog):
    """Data written before `warden:` names were reserved: the server starts, says so, and the admin API
    still accepts only tokens that are for it alone."""
    legacy = "https://legacy.example"

    def with_legacy_api(store):
        store.migrate()
        if store.load_api(legacy) is None:
            store.save_api(Api(legacy, ("warden:admin", "read")))
        return store

    with caplog.at_level("WARNING", logger="warden.server"):
        server = start_server("sqlite", wrap_store=with_legacy_api)
    assert any(legacy in r.getMessage() and "reserved" in r.getMessage() for r in caplog.records)
    admin_api, base = f"{server.issuer}/admin/v1", f"{server.url}/admin/v1"
    cid, secret = server.client({admin_api: "warden:admin:read", legacy: "warden:admin"})
    resp = server.token(cid, secret, resource=[legacy, admin_api], scope="warden:admin")
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope"
    at_legacy = server.token(cid, secret, resource=legacy, scope="warden:admin").json()["access_token"]
    hand_made = _mint(server, cid, [admin_api, legacy], "warden:admin")
    for token in (at_legacy, hand_made):
        resp = httpx.post(f"{base}/clients", json={"name": "x"}, headers={"authorization": f"Bearer {token}"})
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"
    with pytest.raises(ConfigError, match="reserved"):  # updating it needs the reserved name gone first
        server.admin.save_api(legacy, ["warden:admin", "read"], ttl=600)
