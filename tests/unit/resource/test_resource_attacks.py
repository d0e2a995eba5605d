"""Forged and malformed tokens (SECURITY T34-T40, T42, T45; RFC 8725 §2-3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from resource_helpers import AUDIENCE, NOW, FakeIssuer

from warden.jose import PrivateKey, public_jwk
from warden.protocol.errors import InvalidToken
from warden.resource import Validator


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def refused(validator: Validator, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)
    return caught.value.reason


def test_alg_none_is_refused(validator: Validator, issuer: FakeIssuer) -> None:
    for alg in ("none", "None", "NONE"):
        token = compact({"alg": alg, "typ": "at+jwt", "kid": "ES256"}, issuer.claims())
        assert refused(validator, token) == "malformed"
        assert refused(validator, token.rstrip(".") + ".") == "malformed"


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


@pytest.mark.parametrize("kid", ["ES256", "RS256", "PS256", "EdDSA"])
@pytest.mark.parametrize("form", ["pem", "der", "jwk", "openssh"])
def test_hs256_keyed_with_the_public_key_is_refused(
    validator: Validator, issuer: FakeIssuer, keys: dict[str, PrivateKey], kid: str, form: str
) -> None:
    # T34: HS/RS confusion with every encoding of the published key as the HMAC secret.
    public = keys[kid].public_key()
    secret = {
        "pem": lambda: public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        "der": lambda: public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
        "jwk": lambda: json.dumps(public_jwk(keys[kid], kid=kid, alg=kid)).encode(),
        "openssh": lambda: public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH),
    }[form]()
    for alg in ("HS256", "HS384", "HS512"):
        token = _hs256({"alg": alg, "typ": "at+jwt", "kid": kid}, issuer.claims(), secret)
        assert refused(validator, token) == "malformed"


def test_stripped_signature_is_refused(validator: Validator, issuer: FakeIssuer) -> None:
    token = issuer.mint()
    head, payload, _ = token.split(".")
    assert refused(validator, f"{head}.{payload}.") == "signature"
    assert refused(validator, f"{head}.{payload}") == "malformed"


def test_payload_swapped_under_a_valid_signature_is_refused(validator: Validator, issuer: FakeIssuer) -> None:
    genuine = issuer.mint(scope="read").split(".")
    forged = issuer.mint(scope="read admin").split(".")
    assert refused(validator, f"{genuine[0]}.{forged[1]}.{genuine[2]}") == "signature"


def test_token_signed_by_an_unpublished_key_is_refused(
    validator: Validator, issuer: FakeIssuer, other_keys: dict[str, PrivateKey]
) -> None:
    for alg, key in other_keys.items():
        assert refused(validator, issuer.mint(alg, key=key)) == "signature"


@pytest.mark.parametrize("header_key", ["jwk", "jku", "x5u", "x5c"])
def test_keys_named_in_the_header_are_never_used(
    validator: Validator, issuer: FakeIssuer, other_keys: dict[str, PrivateKey], header_key: str
) -> None:
    # T35: attacker signs with its own key and points at it from the header.
    attacker = other_keys["ES256"]
    value = {
        "jwk": public_jwk(attacker),
        "jku": "https://attacker.test/jwks",
        "x5u": "https://attacker.test/cert.pem",
        "x5c": ["MIIB"],
    }[header_key]
    token = issuer.mint("ES256", key=attacker, header={header_key: value})
    assert refused(validator, token) == "signature"
    assert issuer.hits["jwks"] == 1  # nothing was fetched from the header's URL either


def test_header_with_embedded_jwk_and_unknown_kid_is_refused(
    validator: Validator, issuer: FakeIssuer, other_keys: dict[str, PrivateKey]
) -> None:
    attacker = other_keys["ES256"]
    token = issuer.mint("ES256", key=attacker, header={"kid": "attacker", "jwk": public_jwk(attacker)})
    assert refused(validator, token) == "unknown_kid"


@pytest.mark.parametrize("kid", ["../../etc/passwd", "' OR 1=1 --", "k" * 4000, "", "\u0000", "ES256 "])
def test_kid_is_an_opaque_lookup_key(validator: Validator, issuer: FakeIssuer, kid: str) -> None:
    # T36: kid injection reaches nothing but a dictionary lookup.
    token = issuer.mint("ES256", header={"kid": kid})
    assert refused(validator, token) in {"unknown_kid", "too_large"}


def test_non_string_kid_is_refused(validator: Validator, issuer: FakeIssuer) -> None:
    assert refused(validator, issuer.mint("ES256", header={"kid": 7})) == "kid"


def test_key_is_pinned_to_its_algorithm(
    validator: Validator, issuer: FakeIssuer, keys: dict[str, PrivateKey]
) -> None:
    # The RS256 key is published with alg=RS256: a PS256 signature under its kid is refused,
    # even though the key type would allow it (RFC 8725 §3.1).
    token = issuer.mint("PS256", key=keys["RS256"], header={"kid": "RS256"})
    assert refused(validator, token) == "unknown_kid"


def test_unknown_crit_header_is_refused(validator: Validator, issuer: FakeIssuer) -> None:
    for crit in (["exp"], ["b64"], [], "exp", [1]):
        assert refused(validator, issuer.mint(header={"crit": crit, "exp": 1})) == "malformed"


def test_encrypted_and_compressed_tokens_are_refused(validator: Validator, issuer: FakeIssuer) -> None:
    assert refused(validator, "a.b.c.d.e") == "jwe"
    assert refused(validator, issuer.mint(header={"zip": "DEF"})) == "malformed"
    assert refused(validator, issuer.mint(header={"enc": "A128GCM"})) == "malformed"
    assert refused(validator, issuer.mint(header={"b64": False})) == "malformed"


def test_oversize_tokens_are_refused_before_decoding(validator: Validator, issuer: FakeIssuer) -> None:
    token = issuer.mint(padding="x" * 9000)
    assert refused(validator, token) == "too_large"
    assert refused(validator, "A" * 100_000) == "too_large"
    assert issuer.hits["jwks"] == 0


def test_duplicate_claims_are_refused(validator: Validator, issuer: FakeIssuer) -> None:
    # T39 / RFC 7519 §4: two `aud` (or `iss`) members are a parser-differential attack.
    claims = issuer.claims()
    body = json.dumps(claims)[:-1] + ', "aud": "https://evil.test"}'
    assert refused(validator, issuer.mint(payload=body.encode())) == "malformed"
    nested = json.dumps({**claims, "cnf": {"jkt": "a"}})[:-2] + ', "jkt": "b"}}'
    assert refused(validator, issuer.mint(payload=nested.encode())) == "malformed"
    header_dup = issuer.mint(header={"typ": "at+jwt"})
    head = json.dumps({"typ": "JWT", "alg": "ES256", "kid": "ES256"})[:-1] + ', "typ": "at+jwt"}'
    forged = b64(head.encode()) + "." + header_dup.split(".", 1)[1]
    assert refused(validator, forged) == "malformed"


@pytest.mark.parametrize("payload", [
    b'{"exp": NaN}', b'{"exp": Infinity}', b'{"exp": -Infinity}', b'{"exp": 1e400}',
    b"[1, 2]", b'"claims"', b"\xff\xfe", b"{", b"", b'{"a":1} trailing',
])
def test_payloads_that_are_not_a_strict_json_object_are_refused(
    validator: Validator, issuer: FakeIssuer, payload: bytes
) -> None:
    assert refused(validator, issuer.mint(payload=payload)) == "malformed"


def test_malformed_encodings_are_refused(validator: Validator, issuer: FakeIssuer) -> None:
    head, payload, signature = issuer.mint().split(".")
    for token in (
        f"{head}.{payload}.{signature}=",  # padding is not base64url
        f"{head}.{payload}.{signature[:-1]}+",  # standard alphabet
        f"{head}.{payload} .{signature}",
        f"{head}.{payload}.{signature}\n",
        f"{head}.{payload}.{signature}é",
        f" {head}.{payload}.{signature}",
        f"{head}..{signature}",
        f".{payload}.{signature}",
        "",
        "...",
        "not-a-jwt",
    ):
        with pytest.raises(InvalidToken):
            validator.validate(token)


def test_ecdsa_signature_edge_cases_are_refused(
    validator: Validator, issuer: FakeIssuer, keys: dict[str, PrivateKey]
) -> None:
    # T40: r = s = 0 ("psychic signatures"), DER instead of raw R||S, wrong lengths.
    token = issuer.mint("ES256")
    head, payload, _ = token.split(".")
    key = keys["ES256"]
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    der = key.sign(f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    for signature in (
        bytes(64),
        der,
        encode_dss_signature(1, 1),
        (order).to_bytes(32, "big") + (order).to_bytes(32, "big"),
        bytes(63),
        bytes(65),
    ):
        assert refused(validator, f"{head}.{payload}.{b64(signature)}") == "signature"


def test_non_ascii_and_non_string_tokens_are_refused(validator: Validator) -> None:
    for token in ("é.é.é", "\ud800.a.b", b"a.b.c", None, 42):
        with pytest.raises(InvalidToken):
            validator.validate(token)  # type: ignore[arg-type]


def test_other_jwt_types_signed_by_the_issuer_are_refused(validator: Validator, issuer: FakeIssuer) -> None:
    # T45: an ID token, a DPoP proof, a client assertion signed with the AS key are not access tokens.
    for typ in ("JWT", "dpop+jwt", "client-authentication+jwt", "logout+jwt", "id_token+jwt"):
        assert refused(validator, issuer.mint(header={"typ": typ})) == "typ"


def test_error_descriptions_never_echo_token_content(validator: Validator, issuer: FakeIssuer) -> None:
    canary = "CANARY-" + "z" * 20
    for token in (
        issuer.mint(iss=canary),
        issuer.mint(aud=canary),
        issuer.mint(header={"kid": canary}),
        issuer.mint(header={"typ": canary}),
        issuer.mint(exp=int(NOW) - 999, jti=canary),
        canary,
    ):
        with pytest.raises(InvalidToken) as caught:
            validator.validate(token)
        assert canary not in str(caught.value) and canary not in (caught.value.description or "")
        assert token not in repr(caught.value)


def test_audience_substring_is_not_a_match(validator: Validator, issuer: FakeIssuer) -> None:
    # T42: "in" on strings would accept a prefix of the configured audience.
    assert refused(validator, issuer.mint(aud=AUDIENCE[:-1])) == "aud"
    assert refused(validator, issuer.mint(aud=AUDIENCE + "x")) == "aud"
