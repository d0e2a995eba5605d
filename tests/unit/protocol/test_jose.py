import json

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from warden.jose import (
    JoseError,
    encode_header,
    generate_private_key,
    jwk_thumbprint,
    load_public_jwk,
    parse_compact,
    public_jwk,
    sign_compact,
)
from warden.jose._b64 import b64url_encode

ALGS = ["ES256", "RS256", "PS256", "EdDSA"]


@pytest.fixture(scope="module")
def keys():
    return {alg: generate_private_key(alg) for alg in ALGS}


@pytest.mark.parametrize("alg", ALGS)
def test_tokens_we_sign_verify_with_pyjwt(keys, alg):
    token = sign_compact(encode_header({"alg": alg, "typ": "at+jwt", "kid": "k"}), b'{"a":1}', keys[alg], alg)
    pem = keys[alg].public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pyjwt.decode(token, pem, algorithms=[alg]) == {"a": 1}


@pytest.mark.parametrize("alg", ALGS)
def test_tokens_pyjwt_signs_verify_with_us(keys, alg):
    token = pyjwt.encode({"a": 1}, keys[alg], algorithm=alg)
    parsed = parse_compact(token)
    parsed.verify(keys[alg].public_key(), [alg])
    assert parsed.claims() == {"a": 1}


def test_algorithm_must_be_allowed_and_match_key(keys):
    token = sign_compact(encode_header({"alg": "ES256"}), b"{}", keys["ES256"], "ES256")
    with pytest.raises(JoseError):
        parse_compact(token).verify(keys["ES256"].public_key(), ["RS256"])
    with pytest.raises(JoseError):
        parse_compact(token).verify(keys["RS256"].public_key(), ["ES256", "RS256"])


@pytest.mark.parametrize("header", [{"alg": "none"}, {"alg": "HS256"}, {}, {"alg": "ES256", "zip": "DEF"},
                                    {"alg": "ES256", "crit": ["exp"]}, {"alg": "ES256", "crit": []},
                                    {"alg": "ES256", "b64": False}, {"alg": "ES256", "enc": "A128GCM"}])
def test_refused_headers(header):
    token = b64url_encode(json.dumps(header).encode()) + b"." + b64url_encode(b"{}") + b".c2ln"
    with pytest.raises(JoseError):
        parse_compact(token)


def test_hs256_signed_with_public_key_is_refused(keys):
    pem = keys["RS256"].public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    import hmac
    signing_input = b64url_encode(b'{"alg":"HS256"}') + b"." + b64url_encode(b"{}")
    sig = hmac.new(pem, signing_input, hashlib.sha256).digest()
    with pytest.raises(JoseError):
        parse_compact(signing_input + b"." + b64url_encode(sig))


def test_duplicate_members_and_jwe_and_size_are_refused(keys):
    dup = b64url_encode(b'{"alg":"ES256","alg":"ES256"}') + b"." + b64url_encode(b"{}") + b".c2ln"
    with pytest.raises(JoseError):
        parse_compact(dup)
    with pytest.raises(JoseError):
        parse_compact("a.b.c.d.e")
    with pytest.raises(JoseError):
        parse_compact("a" * 9000)
    token = sign_compact(encode_header({"alg": "ES256"}), b'{"a":1,"a":2}', keys["ES256"], "ES256")
    with pytest.raises(JoseError):
        parse_compact(token).claims()


def test_stripped_and_tampered_signatures_fail(keys):
    token = sign_compact(encode_header({"alg": "ES256"}), b"{}", keys["ES256"], "ES256")
    head, payload, sig = token.split(".")
    with pytest.raises(JoseError):
        parse_compact(f"{head}.{payload}.")
    tampered = f"{head}.{b64url_encode(b'{ }').decode()}.{sig}"
    with pytest.raises(JoseError):
        parse_compact(tampered).verify(keys["ES256"].public_key(), ["ES256"])
    zero = f"{head}.{payload}.{b64url_encode(bytes(64)).decode()}"  # r = s = 0 (CVE-2022-21449 shape)
    with pytest.raises(JoseError):
        parse_compact(zero).verify(keys["ES256"].public_key(), ["ES256"])


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_parse_compact_only_raises_jose_error(data):
    try:
        parse_compact(data).claims()
    except JoseError:
        pass


@pytest.mark.parametrize("alg", ALGS)
def test_jwk_roundtrip(keys, alg):
    jwk = public_jwk(keys[alg], kid="k", alg=alg)
    assert "d" not in jwk
    loaded = load_public_jwk(jwk)
    token = sign_compact(encode_header({"alg": alg}), b"{}", keys[alg], alg)
    parse_compact(token).verify(loaded, [alg])


def test_private_jwk_is_refused():
    with pytest.raises(ValueError):
        load_public_jwk({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"})


def test_point_not_on_curve_is_refused():
    with pytest.raises(ValueError):
        load_public_jwk({"kty": "EC", "crv": "P-256", "x": b64url_encode(b"\x01" * 32).decode(),
                         "y": b64url_encode(b"\x02" * 32).decode()})


def test_rfc7638_thumbprint_example():
    # RFC 7638 §3.1 example key and its thumbprint.
    jwk = {"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
           "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCi"
                "FV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZg"
                "nYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIq"
                "bw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
