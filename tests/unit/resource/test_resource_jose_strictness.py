"""The warden.jose rules the validator relies on (and the fixes made for it)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warden.jose import (
    JoseError,
    generate_private_key,
    jwk_thumbprint,
    load_public_jwk,
    parse_json_object,
    parse_protected_header,
    public_jwk,
)
from warden.jose._b64 import b64url_decode, b64url_encode


@given(st.binary(max_size=200))
def test_base64url_round_trips(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data


@settings(max_examples=300)
@given(st.binary(max_size=40))
def test_base64url_decoder_accepts_only_the_unpadded_url_alphabet(data: bytes) -> None:
    alphabet = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    try:
        decoded = b64url_decode(data)
    except ValueError:
        return
    assert set(data) <= alphabet and len(data) % 4 != 1
    assert base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4)) == decoded


@pytest.mark.parametrize("bad", [b"QQ==", b"QQ=", b"Q", b"a+b/", b"QU\nFB", b" QUFB", b"QUFB\x00", b"QUF\xff"])
def test_base64url_decoder_refuses_padding_other_alphabets_and_whitespace(bad: bytes) -> None:
    with pytest.raises(ValueError):
        b64url_decode(bad)


@pytest.mark.parametrize("raw", [
    b'{"exp": NaN}', b'{"exp": Infinity}', b'{"exp": -Infinity}', b'{"exp": 1e400}', b'{"exp": -1e999}',
    b'{"a": 1, "a": 2}', b'{"a": {"b": 1, "b": 1}}', b"[1]", b'{"a": 1} x', b"\xff", b"[" * 3000,
    b'{"n": ' + b"9" * 5000 + b"}",
])
def test_json_objects_must_be_strict(raw: bytes) -> None:
    with pytest.raises(JoseError):
        parse_json_object(raw)


def test_json_objects_with_surrounding_whitespace_are_fine() -> None:
    assert parse_json_object(b' \r\n{"a": [1, 2.5, {"b": null}]}\n') == {"a": [1, 2.5, {"b": None}]}


@pytest.mark.parametrize("header", [
    {"alg": "none"}, {"alg": "HS256"}, {"alg": "ES256", "crit": ["x"], "x": 1}, {"alg": "ES256", "zip": "DEF"},
    {"alg": "RSA-OAEP", "enc": "A256GCM"}, {"alg": "ES256", "b64": False}, {"typ": "at+jwt"},
])
def test_protected_header_rules(header: dict[str, object]) -> None:
    segment = b64url_encode(json.dumps(header).encode())
    with pytest.raises(JoseError):
        parse_protected_header(segment)


def test_ec_coordinates_must_be_full_length() -> None:
    jwk = public_jwk(generate_private_key("ES256"))
    x = b64url_decode(jwk["x"].encode())
    for bad_x in (b"\x00" + x, x[1:] if x[0] == 0 else x[:-1]):
        with pytest.raises(ValueError):
            load_public_jwk({**jwk, "x": b64url_encode(bad_x).decode()})


def test_thumbprint_of_an_incomplete_jwk_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        jwk_thumbprint({"kty": "EC", "crv": "P-256", "x": "AA"})
