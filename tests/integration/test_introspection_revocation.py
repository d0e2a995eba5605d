"""Introspection (RFC 7662) and revocation (RFC 7009) on the real server, on every backend."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from tests.integration.conftest import LiveServer, wait_until

from warden.jose import encode_header, generate_private_key, sign_compact


def introspect(server: LiveServer, caller: tuple[str, str], token: str) -> dict:
    resp = server.post("/oauth2/introspect", data={"token": token}, auth=caller)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    return resp.json()


def mint(server: LiveServer, claims: dict, alg: str = "ES256") -> str:
    """A token signed by the server's own active key, with chosen claims (e.g. already expired)."""
    signer = server.app.runtime.registry.signers[alg]
    return signer.compact.sign(json.dumps(claims).encode())


def test_active_token_is_described(server: LiveServer):
    api = server.api("read")
    creds = server.client({api: "read"})
    token = server.token(*creds).json()["access_token"]
    body = introspect(server, creds, token)
    assert body["active"] is True and body["client_id"] == creds[0] and body["scope"] == "read"
    assert body["aud"] == api and body["iss"] == server.issuer and body["token_type"] == "Bearer"


def test_inactive_tokens_reveal_nothing(server: LiveServer):
    api = server.api("read")
    creds = server.client({api: "read"})
    now = int(time.time())
    base = {"iss": server.issuer, "sub": creds[0], "client_id": creds[0], "aud": api, "scope": "read",
            "iat": now - 1000, "exp": now - 100, "jti": "expired-jti"}
    assert introspect(server, creds, mint(server, base)) == {"active": False}
    foreign = dict(base, iss="https://evil.example", exp=now + 600)
    assert introspect(server, creds, mint(server, foreign)) == {"active": False}
    other_key = generate_private_key("ES256")
    forged = sign_compact(encode_header({"alg": "ES256", "typ": "at+jwt",
                                         "kid": server.app.runtime.registry.signers["ES256"].kid}),
                          json.dumps(dict(base, exp=now + 600)).encode(), other_key, "ES256")
    assert introspect(server, creds, forged) == {"active": False}
    assert introspect(server, creds, "not-a-token") == {"active": False}


def test_revoked_token_becomes_inactive_and_only_the_owner_can_revoke(server: LiveServer):
    api = server.api("read")
    owner = server.client({api: "read"})
    token = server.token(*owner).json()["access_token"]
    assert server.post("/oauth2/revoke", data={"token": token, "token_type_hint": "access_token"},
                       auth=owner).status_code == 200
    assert introspect(server, owner, token) == {"active": False}
    assert server.post("/oauth2/revoke", data={"token": token}, auth=owner).status_code == 200  # again: 200
    assert server.post("/oauth2/revoke", data={"token": "garbage"}, auth=owner).status_code == 200


def test_revoking_another_clients_token_is_refused_and_the_token_stays_active(server: LiveServer):
    api = server.api("read")
    owner = server.client({api: "read"})
    other = server.client({api: "read"})
    token = server.token(*owner).json()["access_token"]
    # RFC 7009 §2.1: the request is refused with an error response (§2.2.1, RFC 6749 §5.2)
    resp = server.post("/oauth2/revoke", data={"token": token}, auth=other)
    assert resp.status_code == 400 and resp.json()["error"] == "unauthorized_client"
    assert token not in resp.text
    assert introspect(server, owner, token)["active"] is True
    refused = [e for e in server.audit_events() if e["event"] == "token.revocation_refused"]
    assert len(refused) == 1 and refused[0]["actor"] == other[0] and refused[0]["reason"] == "foreign_token"
    assert token not in json.dumps(refused) and other[1] not in json.dumps(refused)
    # §2.2: a token that is no longer valid is answered 200 whoever sends it, and changes nothing
    now = int(time.time())
    expired = mint(server, {"iss": server.issuer, "sub": owner[0], "client_id": owner[0], "aud": api,
                            "scope": "read", "iat": now - 1000, "exp": now - 100, "jti": "expired-foreign"})
    assert server.post("/oauth2/revoke", data={"token": expired}, auth=other).status_code == 200
    assert server.post("/oauth2/revoke", data={"token": "garbage"}, auth=other).status_code == 200
    assert introspect(server, owner, token)["active"] is True


def test_revocation_reaches_a_second_server_through_the_store(server: LiveServer, start_server):
    api = server.api("read")
    owner = server.client({api: "read"})
    token = server.token(*owner).json()["access_token"]
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    server.admin.revoke_jti(jti, owner[0])
    assert wait_until(lambda: introspect(server, owner, token) == {"active": False})


def test_disabled_client_and_client_wide_revocation(server: LiveServer):
    api = server.api("read")
    owner = server.client({api: "read"})
    rs = server.client({api: "read"})  # a resource server granted the same API may introspect
    token = server.token(*owner).json()["access_token"]
    assert introspect(server, rs, token)["active"] is True
    server.admin.revoke_client_tokens(owner[0])
    server.sync()
    assert introspect(server, rs, token) == {"active": False}
    time.sleep(1.05)  # a token from the revoking second would be born revoked; the server makes it wait
    fresh = server.token(*owner)
    assert fresh.status_code == 200, fresh.text
    assert introspect(server, rs, fresh.json()["access_token"])["active"] is True
    server.admin.update_client(owner[0], enabled=False)
    server.sync()
    assert introspect(server, rs, fresh.json()["access_token"]) == {"active": False}


def test_caller_cannot_learn_about_tokens_for_apis_it_is_not_granted(server: LiveServer):
    a, b = server.api("read"), server.api("read")
    owner = server.client({a: "read"})
    outsider = server.client({b: "read"})
    token = server.token(*owner).json()["access_token"]
    assert introspect(server, outsider, token) == {"active": False}


@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/revoke"])
def test_callers_must_authenticate(server: LiveServer, path: str):
    resp = server.post(path, data={"token": "x"})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    api = server.api("read")
    cid, _ = server.client({api: "read"})
    resp = server.post(path, data={"token": "x"}, auth=(cid, "wrong"))
    assert resp.status_code == 401
    resp = server.post(path, data={}, auth=server.client({api: "read"}))
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
