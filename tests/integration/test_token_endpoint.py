"""Token endpoint (RFC 6749 §4.4, §5.1, §5.2; RFC 8707) against the real server, on every backend."""

from __future__ import annotations

import jwt
import pytest
from tests.integration.conftest import LiveServer


def test_token_validates_with_pyjwt_against_the_jwks(server: LiveServer):
    api = server.api("read write")
    cid, secret = server.client({api: "read write"}, tenant="acme")
    resp = server.token(cid, secret)
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-store" and resp.headers["pragma"] == "no-cache"
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900 and body["scope"] == "read write"
    assert "refresh_token" not in body  # §4.4.3
    token = body["access_token"]
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    key = jwt.PyJWKClient(f"{server.url}/oauth2/jwks").get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=api, issuer=server.issuer)
    assert claims["sub"] == claims["client_id"] == cid
    assert claims["scope"] == "read write" and claims["tenant"] == "acme"
    assert claims["exp"] - claims["iat"] == 900 and len(claims["jti"]) >= 16


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_gets_a_token(server: LiveServer, method: str):
    api = server.api("read")
    cid, secret = server.client({api: "read"}, auth_method=method)
    from authlib.integrations.httpx_client import OAuth2Client

    with OAuth2Client(cid, secret, token_endpoint_auth_method=method) as client:
        token = client.fetch_token(f"{server.url}/oauth2/token", grant_type="client_credentials", scope="read")
    assert token["token_type"] == "Bearer" and token["scope"] == "read"


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
def test_api_algorithm_selects_the_signing_key(server: LiveServer, alg: str):
    api = server.api("read", alg=alg)
    cid, secret = server.client({api: "read"})
    token = server.token(cid, secret).json()["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == alg
    key = jwt.PyJWKClient(f"{server.url}/oauth2/jwks").get_signing_key_from_jwt(token)
    jwt.decode(token, key.key, algorithms=[alg], audience=api)


def test_resource_and_audience_alias_and_scope_resolution(server: LiveServer):
    a, b = server.api("read write"), server.api("list", ttl=300)
    cid, secret = server.client({a: "read", b: "list"})
    body = server.token(cid, secret, resource=b).json()
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["aud"] == b
    assert body["scope"] == "list" and body["expires_in"] == 300
    body = server.token(cid, secret, audience=b, scope="list").json()
    assert body["scope"] == "list"
    # a and b grant this client no scope in common, so one token for both would have to carry a scope
    # that one of them never granted
    none_in_common = server.token(cid, secret, resource=[a, b])
    assert none_in_common.status_code == 400 and none_in_common.json()["error"] == "invalid_scope"
    c = server.api("read list")
    cid2, secret2 = server.client({a: "read write", c: "read list"})
    both = server.token(cid2, secret2, resource=[a, c]).json()
    assert jwt.decode(both["access_token"], options={"verify_signature": False})["aud"] == [a, c]
    assert both["scope"] == "read"  # the scopes granted and defined at both


def test_scope_and_target_errors(server: LiveServer):
    a, other = server.api("read write"), server.api("read")
    cid, secret = server.client({a: "read"})
    for data, code in (({"scope": "write"}, "invalid_scope"), ({"scope": "nonexistent"}, "invalid_scope"),
                       ({"resource": other}, "invalid_target"),
                       ({"resource": "https://unknown.example"}, "invalid_target"),
                       ({"resource": "not-a-uri"}, "invalid_target"),
                       ({"grant_type": "password"}, "unsupported_grant_type"),
                       ({"grant_type": "authorization_code"}, "unsupported_grant_type")):
        resp = server.token(cid, secret, **data)
        assert resp.status_code == 400, data
        assert resp.json()["error"] == code, data
        assert resp.headers["cache-control"] == "no-store"


def test_scopes_never_leak_across_the_audiences_of_a_multi_resource_token(server: LiveServer):
    """Issue 8 finding 1: read granted on A and write on B must not give one token in which A sees write."""
    a, b = server.api("read write"), server.api("read write")
    cid, secret = server.client({a: "read", b: "write"})
    resp = server.token(cid, secret, resource=[a, b], scope="read write")
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope", resp.text
    assert "every requested resource" in resp.json()["error_description"]
    assert resp.headers["cache-control"] == "no-store"
    denied = [e for e in server.audit_events() if e["event"] == "token.denied" and e.get("client_id") == cid]
    assert denied and denied[-1]["reason"] == "scope_not_granted_everywhere"
    # every way of asking: a token whose audiences include A never carries write
    issued = 0
    for resource_key in ("resource", "audience"):
        for resources in (None, [a], [b], [a, b], [b, a]):
            for scope in (None, "read", "write", "read write", "write read"):
                data = {} if resources is None else {resource_key: resources}
                if scope is not None:
                    data["scope"] = scope
                resp = server.token(cid, secret, **data)
                if resp.status_code != 200:
                    assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope", (data, resp.text)
                    continue
                issued += 1
                claims = jwt.decode(resp.json()["access_token"], options={"verify_signature": False})
                aud = [claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"]
                scopes = set(claims["scope"].split())
                assert not (a in aud and "write" in scopes), data
                assert not (b in aud and "read" in scopes), data
                assert len(aud) == 1, data  # no scope is granted at both, so no token names both
    assert issued == 12  # {A: read} and {B: write}, each reached by (default, resource, audience) x scope forms


def test_unknown_client_and_wrong_secret_answer_identically(server: LiveServer):
    api = server.api()
    cid, secret = server.client({api: "read"})
    wrong = server.token(cid, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    unknown = server.token("no-such-client", secret)
    for resp in (wrong, unknown):
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"].startswith("Basic")
    assert wrong.json() == unknown.json() == {"error": "invalid_client",
                                              "error_description": "client authentication failed"}


def test_disabled_client_and_wrong_method_are_invalid_client(server: LiveServer):
    api = server.api()
    cid, secret = server.client({api: "read"}, auth_method="client_secret_post")
    # registered for client_secret_post, tries Basic: refused (no method switching)
    assert server.token(cid, secret).status_code == 401
    ok = server.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": cid,
                                            "client_secret": secret})
    assert ok.status_code == 200
    server.admin.update_client(cid, enabled=False)
    server.sync()
    resp = server.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": cid,
                                              "client_secret": secret})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
