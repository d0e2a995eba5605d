"""Only the canonical base64url of each byte string is accepted (RFC 4648 §3.5; issue 8 #10).

In an encoding whose length is 2 or 3 modulo 4, the last character carries 4 or 2 bits that
encode nothing. Were they ignored, up to 16 strings would decode to the same token, and a cache
or deny-list keyed by the token string could be walked around. The one decoder
(`warden.jose._b64.b64url_decode`) refuses them, so every JWS segment and JWK member does too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.jose_strategies import signed

from warden.core.clock import FixedClock
from warden.jose import (
    JoseError,
    b64url_decode,
    b64url_encode,
    generate_private_key,
    load_public_jwk,
    public_jwk,
)
from warden.jose import parse_compact as parse
from warden.protocol.dpop import verify_proof
from warden.protocol.errors import InvalidDPoPProof, InvalidToken
from warden.resource import Validator

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
NOW = 1_700_000_000
ISSUER = "https://warden.test"


def siblings(encoded: str) -> list[str]:
    """The other strings that a decoder ignoring the unused bits would read as `encoded`."""
    unused = {2: 4, 3: 2}.get(len(encoded) % 4, 0)
    if not unused:
        return []
    index = ALPHABET.index(encoded[-1])
    base = index & ~((1 << unused) - 1)
    return [encoded[:-1] + ALPHABET[base + low] for low in range(1, 1 << unused)]


@pytest.mark.parametrize(("canonical", "non_canonical"), [
    ("QQ", "QR"), ("QQ", "QS"), ("QQ", "Qf"), ("QUE", "QUF"), ("QUE", "QUH"), ("_w", "_x"), ("__8", "__9"),
    ("AA", "AP"), ("AAA", "AAD"),
])
def test_a_last_character_with_unused_bits_set_is_refused(canonical: str, non_canonical: str) -> None:
    assert b64url_decode(canonical.encode())  # RFC 4648 §3.5: the unused bits are zero here
    with pytest.raises(ValueError, match="not canonical"):
        b64url_decode(non_canonical.encode())


@settings(max_examples=300)
@given(st.binary(max_size=40))
def test_every_other_decoding_of_the_same_bytes_is_refused(data: bytes) -> None:
    encoded = b64url_encode(data).decode()
    assert b64url_decode(encoded.encode()) == data
    for other in siblings(encoded):
        with pytest.raises(ValueError):
            b64url_decode(other.encode())


@settings(max_examples=300)
@given(st.text(alphabet=ALPHABET, max_size=24))
def test_what_is_accepted_is_the_encoding_of_what_it_decodes_to(text: str) -> None:
    try:
        decoded = b64url_decode(text.encode())
    except ValueError:
        return
    assert b64url_encode(decoded).decode() == text  # one string per byte string


KEY = generate_private_key("ES256")


def test_jws_segments_and_jwk_members_must_be_canonical() -> None:
    token = signed({"alg": "ES256"}, {"a": 1}, KEY, "ES256")
    head, payload, signature = token.split(".")
    parse(token)
    for variant in siblings(signature)[:3]:
        with pytest.raises(JoseError, match="base64url"):
            parse(f"{head}.{payload}.{variant}")
    jwk = public_jwk(KEY)
    load_public_jwk(jwk)
    with pytest.raises(ValueError):
        load_public_jwk({**jwk, "x": siblings(jwk["x"])[0]})


def test_dpop_proof_with_a_non_canonical_jwk_or_signature_is_invalid() -> None:
    jwk = public_jwk(KEY)
    claims = {"jti": uuid.uuid4().hex, "htm": "POST", "htu": "https://warden.test/oauth2/token", "iat": NOW}
    args = {"method": "POST", "url": "https://warden.test/oauth2/token", "algorithms": ("ES256",), "max_age": 60,
            "leeway": 5, "now": float(NOW)}
    proof = signed({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}, claims, KEY, "ES256")
    verify_proof(proof, **args)  # type: ignore[arg-type]
    head, payload, signature = proof.split(".")
    with pytest.raises(InvalidDPoPProof):
        verify_proof(f"{head}.{payload}.{siblings(signature)[0]}", **args)  # type: ignore[arg-type]
    other = signed({"typ": "dpop+jwt", "alg": "ES256", "jwk": {**jwk, "y": siblings(jwk["y"])[0]}}, claims, KEY,
                   "ES256")
    with pytest.raises(InvalidDPoPProof):
        verify_proof(other, **args)  # type: ignore[arg-type]


def _issuer(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/.well-known/oauth-authorization-server":
        return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/oauth2/jwks"})
    return httpx.Response(200, json={"keys": [public_jwk(KEY, kid="as1", alg="ES256")]})


@pytest.fixture
def validator() -> Iterator[Validator]:
    with httpx.Client(transport=httpx.MockTransport(_issuer)) as client:
        yield Validator(ISSUER, "https://api.test", http_client=client, clock=FixedClock(NOW))


def _access_token(**extra: object) -> str:
    claims = {"iss": ISSUER, "sub": "svc", "client_id": "svc", "aud": "https://api.test", "iat": NOW,
              "exp": NOW + 600, "jti": uuid.uuid4().hex, **extra}
    return signed({"typ": "at+jwt", "alg": "ES256", "kid": "as1"}, claims, KEY, "ES256")


def test_the_validator_refuses_each_non_canonical_spelling_of_a_valid_token(validator: Validator) -> None:
    token = _access_token()
    validator.validate(token)
    head, payload, signature = token.split(".")
    # The signature is the one segment outside the signing input, so the one that could be respelled
    # unnoticed; an ES256 signature (64 bytes, 86 characters) ends with 4 unused bits.
    variants = [f"{head}.{payload}.{s}" for s in siblings(signature)]
    assert len(variants) == 15
    for variant in variants:
        with pytest.raises(InvalidToken):
            validator.validate(variant)

