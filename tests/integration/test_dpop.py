"""DPoP at the token endpoint (RFC 9449 §4.3, §5, §6.1, §8), proofs made with PyJWT (not the JOSE code
the server uses), and end to end with Warden's client and resource-server libraries."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt as pyjwt
import pytest
from tests.integration.conftest import LiveServer

from warden.jose import generate_private_key, jwk_thumbprint, public_jwk
from warden.protocol.dpop import access_token_hash

KEY = generate_private_key("ES256")
JWK = public_jwk(KEY)


def proof(url: str, *, method: str = "POST", key=KEY, jwk: dict | None = None, typ: str = "dpop+jwt",
          alg: str = "ES256", **claims) -> str:
    body = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
    body.update(claims)
    return pyjwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg,
                        headers={"typ": typ, "jwk": jwk if jwk is not None else JWK})


def request(server: LiveServer, creds, dpop: str | list[str] | None, **data):
    headers = []
    for value in ([dpop] if isinstance(dpop, str) else dpop or []):
        headers.append(("DPoP", value))
    return server.http.post(f"{server.url}/oauth2/token", data={"grant_type": "client_credentials", **data},
                            auth=creds, headers=headers)


def test_proof_binds_the_token_to_the_key(server: LiveServer):
    api = server.api("read")
    creds = server.client({api: "read"})
    url = f"{server.issuer}/oauth2/token"
    resp = request(server, creds, proof(url))
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "DPoP"
    token = resp.json()["access_token"]
    assert pyjwt.decode(token, options={"verify_signature": False})["cnf"] == {"jkt": jwk_thumbprint(JWK)}
    described = server.post("/oauth2/introspect", data={"token": token}, auth=creds).json()
    assert described["token_type"] == "DPoP" and described["cnf"]["jkt"] == jwk_thumbprint(JWK)
    # htu comparison ignores query and normalises case and default port (RFC 9449 §4.3 check 9)
    assert request(server, creds, proof(url.replace("http://", "HTTP://") + "?x=1")).status_code == 200


def test_every_proof_rule_is_enforced(server: LiveServer):
    api = server.api("read")
    creds = server.client({api: "read"})
    url = f"{server.issuer}/oauth2/token"
    private = dict(public_jwk(KEY))
    private["d"] = "AAAA"
    cases = {
        "wrong_htm": proof(url, method="GET"),
        "other_url": proof(f"{server.issuer}/oauth2/introspect"),
        "wrong_typ": proof(url, typ="jwt"),
        "old_iat": proof(url, iat=int(time.time()) - 3600),
        "future_iat": proof(url, iat=int(time.time()) + 3600),
        "no_jti": proof(url, jti=None),
        "private_jwk": proof(url, jwk=private),
        "key_mismatch": proof(url, jwk=public_jwk(generate_private_key("ES256"))),
        "hs256": pyjwt.encode({"jti": "x", "htm": "POST", "htu": url, "iat": int(time.time())}, "secret" * 6,
                              algorithm="HS256", headers={"typ": "dpop+jwt", "jwk": JWK}),
        "malformed": "not-a-jwt",
        "two_headers": [proof(url), proof(url)],
    }
    for name, value in cases.items():
        resp = request(server, creds, value)
        assert resp.status_code == 400, (name, resp.text)
        assert resp.json()["error"] == "invalid_dpop_proof", (name, resp.text)
    reused = proof(url)
    assert request(server, creds, reused).status_code == 200
    replay = request(server, creds, reused)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_dpop_proof"


def test_api_and_client_can_require_dpop(server: LiveServer):
    strict = server.api("read")
    server.admin.save_api(strict, ["read"], dpop_required=True)
    creds = server.client({strict: "read"})
    server.sync()
    bearer = request(server, creds, None)
    assert bearer.status_code == 400 and bearer.json()["error"] == "invalid_dpop_proof"
    assert request(server, creds, proof(f"{server.issuer}/oauth2/token")).json()["token_type"] == "DPoP"

    from warden.core.client_metadata import parse_client_metadata

    api = server.api("read")
    cid, secret = server.client({api: "read"})
    server.admin.update_client(cid, metadata=parse_client_metadata({"dpop_bound_access_tokens": True}))
    server.sync()
    assert request(server, (cid, secret), None).json()["error"] == "invalid_dpop_proof"


def test_server_nonces(start_server):
    server = start_server("sqlite", **{"dpop.require_nonce": True})
    api = server.api("read")
    creds = server.client({api: "read"})
    url = f"{server.issuer}/oauth2/token"
    first = request(server, creds, proof(url))
    assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce"
    nonce = first.headers["dpop-nonce"]
    stale = request(server, creds, proof(url, nonce="made-up"))
    assert stale.json()["error"] == "use_dpop_nonce"
    ok = request(server, creds, proof(url, nonce=nonce))
    assert ok.status_code == 200 and ok.json()["token_type"] == "DPoP"
    assert ok.headers["dpop-nonce"]


def test_dpop_end_to_end_with_the_client_and_resource_libraries(server: LiveServer):
    from warden.client import ClientCredentials, DPoPKey
    from warden.resource import InvalidToken, Validator

    api = server.api("read")
    cid, secret = server.client({api: "read"})
    key = DPoPKey.generate("ES256")
    cc = ClientCredentials(issuer=server.issuer, client_id=cid, client_secret=secret, audience=api, scope="read",
                           dpop_key=key)
    issued = cc.get_access_token()
    assert issued.token_type == "DPoP"
    validator = Validator(issuer=server.issuer, audience=api)
    url = "https://rs.example/orders"
    rs_proof = pyjwt.encode({"jti": uuid.uuid4().hex, "htm": "GET", "htu": url, "iat": int(time.time()),
                             "ath": access_token_hash(issued.access_token)},
                            key.key.private_key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": key.key.public_jwk()})
    claims = validator.validate(issued.access_token, scheme="DPoP", dpop_proof=rs_proof, method="GET", url=url)
    assert claims.jkt == key.thumbprint
    with pytest.raises(InvalidToken):  # a DPoP-bound token presented as a bearer token (RFC 9449 §7.2)
        validator.validate(issued.access_token)


def test_metadata_advertises_dpop(server: LiveServer):
    meta = httpx.get(f"{server.url}/.well-known/oauth-authorization-server").json()
    assert set(meta["dpop_signing_alg_values_supported"]) == {"ES256", "RS256", "PS256", "EdDSA"}


def test_with_redis_a_dpop_proof_is_recorded_once_in_redis(start_server, redis_url: str, redis_prefix: str):
    """With `redis_url`, the proof's single use is one SET NX PX in Redis (shared by every node), not a
    store write; the replay is refused the same way."""
    import redis

    server: LiveServer = start_server("sqlite", redis_url=redis_url, redis_key_prefix=redis_prefix)
    api = server.api("read")
    creds = server.client({api: "read"})
    reused = proof(f"{server.issuer}/oauth2/token")
    assert request(server, creds, reused).status_code == 200
    replay = request(server, creds, reused)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_dpop_proof"
    client = redis.Redis.from_url(redis_url)
    try:
        recorded = client.keys(redis_prefix + "jti:*")
        assert len(recorded) == 1
        client.delete(*recorded, *client.keys(redis_prefix + "*"))
    finally:
        client.close()
