"""private_key_jwt (RFC 7523 §2.2, RFC 10070 §4) against the real server: Authlib's client, the
attack rows T01-T12 over HTTP at every endpoint that authenticates clients, replay races, jwks_uri."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl

import httpx
import jwt as pyjwt
import pytest
from tests.integration.conftest import JsonDocuments, LiveServer

from warden.core.client_metadata import parse_client_metadata
from warden.jose import generate_private_key, public_jwk

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def register(server: LiveServer, jwks: dict | None = None, jwks_uri: str | None = None) -> tuple[str, str]:
    api = server.api("read")
    meta = parse_client_metadata({"jwks": jwks} if jwks else {"jwks_uri": jwks_uri}, allow_loopback_http=True)
    client, _ = server.admin.create_client("pkjwt", [__import__("warden.services.admin", fromlist=["GrantSpec"])
                                                     .GrantSpec(api, ("read",))],
                                           auth_method="private_key_jwt", metadata=meta)
    server.wait_for_client(client.client_id)
    return client.client_id, api


def assertion(server: LiveServer, cid: str, key, kid: str = "k1", alg: str = "ES256", **over) -> str:
    now = int(time.time())
    claims = {"iss": cid, "sub": cid, "aud": server.issuer, "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    claims.update(over)
    return pyjwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm=alg,
                        headers={"kid": kid})


def post(server: LiveServer, path: str, cid: str | None, token: str, **extra) -> httpx.Response:
    data = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token, **extra}
    if cid is not None:
        data["client_id"] = cid
    if path == "/oauth2/token":
        data.setdefault("grant_type", "client_credentials")
    else:
        data.setdefault("token", "anything")
    return server.post(path, data=data)


@pytest.fixture
def pk_server(start_server):
    return start_server("sqlite", dev_mode=True)


KEY = generate_private_key("ES256")
JWKS = {"keys": [public_jwk(KEY, kid="k1", alg="ES256")]}


def test_authlib_private_key_jwt_client_configured_with_the_issuer_audience(start_server):
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    from cryptography.hazmat.primitives import serialization

    rsa = generate_private_key("RS256")
    # Authlib signs assertions valid for one hour (exp = iat + 3600); the default settings accept that.
    server = start_server("sqlite")
    cid, _api = register(server, {"keys": [public_jwk(rsa, kid="r1", alg="RS256")]})
    pem = rsa.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # Authlib uses PrivateKeyJWT's `token_endpoint` argument only as the audience: give it the issuer.
    with OAuth2Client(cid, pem, token_endpoint_auth_method=PrivateKeyJWT(server.issuer, headers={"kid": "r1"})) as c:
        token = c.fetch_token(f"{server.url}/oauth2/token", grant_type="client_credentials")
        again = c.fetch_token(f"{server.url}/oauth2/token", grant_type="client_credentials")  # fresh jti each time
    assert token["token_type"] == "Bearer" and again["access_token"] != token["access_token"]
    # with Authlib's default (the token endpoint URL as audience) the server refuses
    with (OAuth2Client(cid, pem, token_endpoint_auth_method=PrivateKeyJWT(headers={"kid": "r1"})) as c,
          pytest.raises(Exception, match="invalid_client")):
        c.fetch_token(f"{server.url}/oauth2/token", grant_type="client_credentials")


class RecordingStore:
    """The server's store, recording how long each single-use assertion record is asked to last."""

    def __init__(self, store, uses: list) -> None:
        self._store, self._uses = store, uses

    def use_assertion(self, key: str, exp: float) -> bool:
        self._uses.append((key, exp))
        return self._store.use_assertion(key, exp)

    def __getattr__(self, name: str):
        return getattr(self._store, name)


def test_authlib_assertions_are_worth_minutes_not_their_hour(start_server, monkeypatch):
    """Issue 8 finding 13: Authlib's defaults work with Warden's; an assertion is accepted only within
    client_auth.assertion_max_age of its iat, and its jti record is kept only that long."""
    import types

    import authlib.oauth2.rfc7523.assertion as authlib_assertion_module
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    from cryptography.hazmat.primitives import serialization

    uses: list = []
    server = start_server("sqlite", wrap_store=lambda store: RecordingStore(store, uses))
    rsa = generate_private_key("RS256")
    cid, _ = register(server, {"keys": [public_jwk(rsa, kid="r1", alg="RS256")]})
    settings = server.settings.client_auth
    assert (settings.assertion_max_lifetime, settings.assertion_max_age, settings.leeway) == (3600, 300, 30)
    pem = rsa.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    auth = types.SimpleNamespace(client_id=cid, client_secret=pem)

    def authlib_assertion(issued_at: int) -> str:
        """What Authlib's PrivateKeyJWT sends, with its defaults, as if signed at `issued_at`: only the
        clock Authlib reads is moved (a stolen assertion presented that much later)."""
        clock = types.SimpleNamespace(time=lambda: issued_at)
        monkeypatch.setattr(authlib_assertion_module, "time", clock)
        try:
            # the client configured as this README says: PrivateKeyJWT's first argument (the issuer) is the aud
            _, _, body = PrivateKeyJWT(server.issuer, headers={"kid": "r1"})(
                auth, "POST", f"{server.url}/oauth2/token", {}, "grant_type=client_credentials")
        finally:
            monkeypatch.undo()
        return dict(parse_qsl(body))["client_assertion"]

    now = int(time.time())
    recent = authlib_assertion(now - 100)
    assert pyjwt.decode(recent, options={"verify_signature": False})["exp"] == now - 100 + 3600
    assert post(server, "/oauth2/token", cid, recent).status_code == 200
    jti = pyjwt.decode(recent, options={"verify_signature": False})["jti"]
    assert uses[-1] == (f"pkjwt:{cid}:{jti}", now - 100 + 300 + 30)  # min(exp, iat + max_age) + leeway
    replay = post(server, "/oauth2/token", cid, recent)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    # stolen before use and presented later: refused although its exp is most of an hour away
    for age in (301 + 5, 1800, 3500):
        stale = post(server, "/oauth2/token", cid, authlib_assertion(now - age))
        assert stale.status_code == 401 and stale.json()["error"] == "invalid_client", age
        assert "seconds old" in stale.json()["error_description"]
    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        assert post(server, path, cid, authlib_assertion(now - 1800)).status_code == 401
        assert post(server, path, cid, authlib_assertion(int(time.time()))).status_code == 200
    reasons = [e.get("reason") for e in server.audit_events() if e["event"] == "client.authentication_failed"]
    assert reasons.count("assertion_iat_age") == 5 and "assertion_replayed" in reasons
    # without iat, exp must be within max_age: no way around the bound by leaving iat out
    no_iat = pyjwt.encode({"iss": cid, "sub": cid, "aud": server.issuer, "exp": now + 3000, "jti": uuid.uuid4().hex},
                          KEY, algorithm="ES256", headers={"kid": "k1"})
    assert post(server, "/oauth2/token", cid, no_iat).status_code == 401


def test_assertion_max_age_is_a_setting(start_server):
    server = start_server("sqlite", **{"client_auth.assertion_max_age": "30m"})
    cid, _ = register(server, JWKS)
    now = int(time.time())
    assert post(server, "/oauth2/token", cid, assertion(server, cid, KEY, iat=now - 1200, exp=now + 600)
                ).status_code == 200
    assert post(server, "/oauth2/token", cid, assertion(server, cid, KEY, iat=now - 1900, exp=now + 600)
                ).status_code == 401


@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"])
def test_audience_rules_apply_at_every_client_authentication_endpoint(pk_server: LiveServer, path: str):
    cid, _ = register(pk_server, JWKS)
    ok = post(pk_server, path, cid, assertion(pk_server, cid, KEY))
    assert ok.status_code == 200, ok.text
    for aud in (f"{pk_server.issuer}/oauth2/token", [pk_server.issuer, "https://other.example"],
                pk_server.issuer + "/", pk_server.issuer.upper()):
        resp = post(pk_server, path, cid, assertion(pk_server, cid, KEY, aud=aud))
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_client", aud
        assert pk_server.issuer in resp.json()["error_description"]  # names the expected audience
    assert post(pk_server, path, cid, assertion(pk_server, cid, KEY, aud=[pk_server.issuer])).status_code == 200


def test_token_endpoint_audience_is_accepted_only_in_compatibility_mode(start_server):
    server = start_server("sqlite", **{"client_auth.accept_token_endpoint_audience": True})
    cid, _ = register(server, JWKS)
    assert post(server, "/oauth2/token", cid, assertion(server, cid, KEY, aud=f"{server.issuer}/oauth2/token")
                ).status_code == 200


def test_attack_matrix(pk_server: LiveServer):
    s = pk_server
    cid, _api = register(s, JWKS)
    other_cid, _ = register(s, {"keys": [public_jwk(generate_private_key("ES256"), kid="k1", alg="ES256")]})
    now = int(time.time())
    cases = {
        "expired": assertion(s, cid, KEY, exp=now - 300),
        "far_future": assertion(s, cid, KEY, exp=now + 86400),
        "nbf_future": assertion(s, cid, KEY, nbf=now + 120),
        "iss_mismatch": assertion(s, cid, KEY, iss=other_cid),
        "sub_mismatch": assertion(s, cid, KEY, sub=other_cid),
        "no_jti": assertion(s, cid, KEY, jti=None),
        "other_key": assertion(s, cid, generate_private_key("ES256")),
        "others_client_id": assertion(s, other_cid, KEY),  # signed with our key, claims to be the other client
        "typ_at_jwt": pyjwt.encode({"iss": cid, "sub": cid, "aud": s.issuer, "exp": now + 60, "jti": "t"}, KEY,
                                   algorithm="ES256", headers={"kid": "k1", "typ": "at+jwt"}),
        "header_jwk": pyjwt.encode({"iss": cid, "sub": cid, "aud": s.issuer, "exp": now + 60, "jti": "h"},
                                   (evil := generate_private_key("ES256")), algorithm="ES256",
                                   headers={"kid": "k1", "jwk": public_jwk(evil)}),
        "oversized": "a" * 8100,
        "malformed": "not.a.jwt",
    }
    for name, token in cases.items():
        resp = post(s, "/oauth2/token", cid if name != "others_client_id" else other_cid, token)
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_client", (name, resp.text)
    # two methods at once; missing assertion type; wrong assertion type
    resp = s.post("/oauth2/token", data={"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                                         "client_assertion": assertion(s, cid, KEY)}, auth=(cid, "secret"))
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    resp = s.post("/oauth2/token", data={"grant_type": "client_credentials", "client_assertion":
                                         assertion(s, cid, KEY)})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    resp = post(s, "/oauth2/token", cid, assertion(s, cid, KEY), client_assertion_type="urn:x")
    assert resp.status_code == 401
    reasons = {e.get("reason") for e in s.audit_events() if e["event"] == "client.authentication_failed"}
    assert {"assertion_expired", "assertion_lifetime", "assertion_nbf", "assertion_iss", "assertion_jti",
            "assertion_signature", "assertion_typ", "assertion_malformed"} <= reasons
    too_big = post(s, "/oauth2/token", cid, "a" * 9000)  # beyond the parameter limit: refused before parsing
    assert too_big.status_code == 400 and too_big.json()["error"] == "invalid_request"
    log = s.audit_path.read_text()
    assert all(token[:40] not in log for token in cases.values() if token.count(".") == 2)


def test_no_downgrade_between_secret_and_key_methods(pk_server: LiveServer):
    s = pk_server
    cid, api = register(s, JWKS)
    secret_cid, _secret = s.client({api: "read"})
    # a private_key_jwt client cannot use a secret (it has none; any secret fails like a wrong one)
    assert s.token(cid, "wsec_anything").status_code == 401
    # a secret client cannot authenticate with an assertion, even one signed by a registered-looking key
    resp = post(s, "/oauth2/token", secret_cid, assertion(s, secret_cid, KEY))
    assert resp.status_code == 401
    assert any(e.get("reason") == "auth_method_mismatch" for e in s.audit_events())


def test_replayed_assertion_is_refused_also_when_copies_race(start_server):
    for backend in ("sqlite",):
        s = start_server(backend, dev_mode=True)
        cid, _ = register(s, JWKS)
        token = assertion(s, cid, KEY)
        assert post(s, "/oauth2/token", cid, token).status_code == 200
        replay = post(s, "/oauth2/token", cid, token)
        assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
        racing = assertion(s, cid, KEY)
        with ThreadPoolExecutor(max_workers=50) as pool:
            codes = [f.result().status_code for f in [pool.submit(post, s, "/oauth2/token", cid, racing) for _ in range(50)]]
        assert codes.count(200) == 1 and codes.count(401) == 49


@pytest.mark.postgres
def test_replay_race_on_postgres(start_server):
    s = start_server("postgresql", dev_mode=True)
    cid, _ = register(s, JWKS)
    racing = assertion(s, cid, KEY)
    with ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(lambda _: post(s, "/oauth2/token", cid, racing).status_code, range(50)))
    assert codes.count(200) == 1


def test_failed_assertions_lock_out_the_identity_they_claim_not_other_clients(start_server):
    """Without client_id an assertion claims its `sub`: failures for one client, with or without
    client_id, spend that client's budget at this address and no other client's."""
    server = start_server("sqlite", dev_mode=True, **{"limits.failed_auth_per_minute": 3})
    victim, _ = register(server, JWKS)
    other, _ = register(server, JWKS)
    wrong = generate_private_key("ES256")
    codes = [post(server, "/oauth2/token", None, assertion(server, victim, wrong)).status_code for _ in range(4)]
    assert codes == [401] * 3 + [429]
    for cid in (None, victim):  # the right key is not evaluated any more, however the client is named
        assert post(server, "/oauth2/token", cid, assertion(server, victim, KEY)).status_code == 429
    assert post(server, "/oauth2/token", None, assertion(server, other, KEY)).status_code == 200


def test_jwks_uri_is_fetched_cached_and_refetched_on_unknown_kid(start_server, json_documents: JsonDocuments):
    s = start_server("sqlite", dev_mode=True, **{"client_auth.jwks_refresh_cooldown": 1})
    json_documents.documents["/jwks"] = JWKS
    cid, _ = register(s, jwks_uri=f"{json_documents.url}/jwks")
    for _ in range(3):
        assert post(s, "/oauth2/token", cid, assertion(s, cid, KEY)).status_code == 200
    assert json_documents.hits["/jwks"] == 1  # cached
    # the client rotates to a new key: the unknown kid triggers one refetch
    new = generate_private_key("ES256")
    json_documents.documents["/jwks"] = {"keys": [public_jwk(new, kid="k2", alg="ES256")]}
    time.sleep(1.1)  # past the refetch cooldown
    assert post(s, "/oauth2/token", cid, assertion(s, cid, new, kid="k2")).status_code == 200
    assert json_documents.hits["/jwks"] == 2
    # a flood of forged kids within the cooldown does not hammer the client's server
    for i in range(20):
        assert post(s, "/oauth2/token", cid, assertion(s, cid, new, kid=f"forged-{i}")).status_code == 401
    assert json_documents.hits["/jwks"] == 2


def test_unreachable_jwks_uri_is_503_not_invalid_client(pk_server: LiveServer):
    s = pk_server
    cid, _ = register(s, jwks_uri="http://127.0.0.1:1/jwks")
    resp = post(s, "/oauth2/token", cid, assertion(s, cid, KEY))
    assert resp.status_code == 503 and resp.json()["error"] == "temporarily_unavailable"


def test_metadata_advertises_private_key_jwt(pk_server: LiveServer):
    meta = pk_server.http.get(f"{pk_server.url}/.well-known/oauth-authorization-server").json()
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    assert set(meta["token_endpoint_auth_signing_alg_values_supported"]) == {"RS256", "PS256", "ES256", "EdDSA"}


def test_disabled_private_key_jwt_client_is_refused(pk_server: LiveServer):
    cid, _ = register(pk_server, JWKS)
    pk_server.admin.update_client(cid, enabled=False)
    pk_server.sync()
    assert post(pk_server, "/oauth2/token", cid, assertion(pk_server, cid, KEY)).status_code == 401
    assert any(e.get("reason") == "client_disabled" for e in pk_server.audit_events())


def test_warden_client_library_with_private_key_jwt(pk_server: LiveServer):
    from warden.client import ClientCredentials, SigningKey

    key = SigningKey.generate("ES256", key_id="lib-1")
    cid, api = register(pk_server, {"keys": [key.public_jwk()]})
    cc = ClientCredentials(issuer=pk_server.issuer, client_id=cid, private_key=key, auth_method="private_key_jwt",
                           audience=api, scope="read")
    first = cc.get_token()
    cc.invalidate(audience=api, scope="read")
    assert cc.get_token() != first  # a fresh assertion (new jti) each time, accepted each time


@pytest.mark.parametrize("form", ["pem", "der", "jwk"])
def test_hs256_signed_with_the_registered_public_key_is_refused_over_http(pk_server: LiveServer, form: str):
    import base64
    import hashlib
    import hmac
    import json

    from cryptography.hazmat.primitives import serialization

    rsa = generate_private_key("RS256")
    jwk = public_jwk(rsa, kid="r1")
    cid, _ = register(pk_server, {"keys": [jwk]})
    pub = rsa.public_key()
    secret = {"pem": pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
              "der": pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
              "jwk": json.dumps(jwk).encode()}[form]

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    now = int(time.time())
    head = b64(b'{"alg":"HS256","kid":"r1"}')
    body = b64(json.dumps({"iss": cid, "sub": cid, "aud": pk_server.issuer, "exp": now + 60, "jti": "h"}).encode())
    token = (head + b"." + body + b"." + b64(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())).decode()
    resp = post(pk_server, "/oauth2/token", cid, token)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
