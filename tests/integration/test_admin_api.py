"""Admin REST API (/admin/v1) on the real server, authorised by Warden's own tokens."""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote

import httpx
import jwt as pyjwt
import pytest

from tests.integration.conftest import LiveServer
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
    assert ident in [a["identifier"] for a in api.get("/apis").json()]
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
    secrets = api.get(f"/clients/{cid}/secrets").json()
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
    assert bad.status_code == 400 and "private key" in bad.json()["error_description"]


def test_keys_and_token_revocation(server: LiveServer, api: httpx.Client):
    assert {k["state"] for k in api.get("/keys").json()} == {"active", "next"}
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
