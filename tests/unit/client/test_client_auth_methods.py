"""Client authentication methods (RFC 6749 §2.3.1, RFC 7523, RFC 8705) and DPoP proofs (RFC 9449 §4)."""

from __future__ import annotations

import base64
import hashlib
import ssl
from urllib.parse import parse_qs

import pytest

from warden.client import CLIENT_AUTH_METHODS, DPoPKey, Secret, SigningKey
from warden.client._client_auth import ASSERTION_TYPE, ClientAuthentication
from warden.client._request import TokenRequestFactory
from warden.jose import load_public_jwk, parse_compact

ENDPOINT = "https://as.example/oauth2/token"
KEY = ("https://api.example", frozenset({"read", "write"}))
NOW = 1_700_000_000.0


def build(auth: ClientAuthentication, dpop: DPoPKey | None = None):
    request = TokenRequestFactory(auth, dpop_key=dpop, wall_clock=lambda: NOW).build(ENDPOINT, KEY)
    return dict(request.headers), parse_qs(request.body.decode())


def test_registry_declares_each_method_and_its_parameters():
    assert set(CLIENT_AUTH_METHODS) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    }
    assert CLIENT_AUTH_METHODS["client_secret_post"].parameters == ("client_id", "client_secret")
    assert CLIENT_AUTH_METHODS["tls_client_auth"].uses_mtls


def test_client_secret_basic_form_encodes_id_and_secret_before_base64():
    auth = ClientAuthentication("my client", "client_secret_basic", secret=Secret("p@ss:w/rd+%"))
    headers, form = build(auth)
    decoded = base64.b64decode(headers["authorization"].removeprefix("Basic ")).decode()
    assert decoded == "my+client:p%40ss%3Aw%2Frd%2B%25"  # RFC 6749 §2.3.1 / Appendix B
    assert "client_secret" not in form and "client_id" not in form
    assert form["scope"] == ["read write"] and form["resource"] == ["https://api.example"]


def test_client_secret_post_puts_credentials_in_the_body():
    headers, form = build(ClientAuthentication("c1", "client_secret_post", secret=Secret("s1")))
    assert "authorization" not in headers
    assert form["client_id"] == ["c1"] and form["client_secret"] == ["s1"]


def test_private_key_jwt_assertion_is_bound_to_the_issuer():
    key = SigningKey.generate("ES256", key_id="k1")
    auth = ClientAuthentication("c1", "private_key_jwt", signing_key=key, issuer="https://as.example")
    _, form = build(auth)
    assert form["client_assertion_type"] == [ASSERTION_TYPE] and form["client_id"] == ["c1"]
    jws = parse_compact(form["client_assertion"][0])
    jws.verify(load_public_jwk(key.public_jwk()), ["ES256"])
    claims = jws.claims()
    assert jws.header["typ"] == "client-authentication+jwt" and jws.header["kid"] == "k1"
    assert claims["aud"] == "https://as.example"  # the issuer, never the token endpoint URL (T61)
    assert claims["iss"] == claims["sub"] == "c1"
    assert 0 < claims["exp"] - claims["iat"] <= 60 and claims["iat"] == int(NOW)
    _, second = build(auth)
    assert parse_compact(second["client_assertion"][0]).claims()["jti"] != claims["jti"]


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_every_registered_algorithm_signs_assertions(alg):
    key = SigningKey.generate(alg)
    auth = ClientAuthentication("c1", "private_key_jwt", signing_key=key, issuer="https://as.example")
    _, form = build(auth)
    parse_compact(form["client_assertion"][0]).verify(load_public_jwk(key.public_jwk()), [alg])


def test_workload_identity_sends_the_platform_token_as_is_read_afresh_per_request():
    tokens = iter(["eyJplatform.one.sig", "eyJplatform.two.sig"])
    auth = ClientAuthentication("c1", "private_key_jwt", assertion=lambda: next(tokens))
    _, form = build(auth)
    assert form["client_assertion_type"] == [ASSERTION_TYPE] and form["client_id"] == ["c1"]
    assert form["client_assertion"] == ["eyJplatform.one.sig"]
    assert build(auth)[1]["client_assertion"] == ["eyJplatform.two.sig"]


def test_tls_client_auth_sends_only_the_client_id():
    headers, form = build(ClientAuthentication("c1", "tls_client_auth"))
    assert form["client_id"] == ["c1"] and "authorization" not in headers and "client_secret" not in form


def test_dpop_proof_for_a_resource_request_binds_method_uri_and_token():
    dpop = DPoPKey.generate(wall_clock=lambda: NOW)
    proof = parse_compact(
        dpop.proof("get", "https://API.example/v1/items?page=2#top", nonce="n1", access_token="tok")
    )
    proof.verify(load_public_jwk(proof.header["jwk"]), ["ES256"])
    claims = proof.claims()
    assert proof.header["typ"] == "dpop+jwt" and "d" not in proof.header["jwk"]
    assert claims["htm"] == "GET" and claims["htu"] == "https://api.example/v1/items"  # no query, no fragment
    assert claims["nonce"] == "n1" and claims["iat"] == int(NOW)
    expected_ath = base64.urlsafe_b64encode(hashlib.sha256(b"tok").digest()).rstrip(b"=").decode()
    assert claims["ath"] == expected_ath
    assert dpop.proof("GET", "https://api.example/") != dpop.proof("GET", "https://api.example/")  # fresh jti


def test_signing_key_loads_from_pem_and_refuses_a_mismatched_alg(tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = SigningKey.generate("ES256")
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    loaded = SigningKey.from_pem_file(path)
    assert loaded.alg == "ES256" and loaded.same_key(key)
    from warden.errors import ConfigError

    with pytest.raises(ConfigError, match="does not fit"):
        SigningKey.from_pem_file(path, alg="RS256")
    path.write_text("not a key")
    with pytest.raises(ConfigError, match="not a usable PEM") as caught:
        SigningKey.from_pem_file(path)
    assert "not a key" not in str(caught.value)


def test_ssl_context_without_verification_is_refused():
    from warden.client import ClientCredentials
    from warden.errors import ConfigError

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(ConfigError, match="verify"):
        ClientCredentials("https://as.example", client_id="c", client_secret="s", ssl_context=context)
