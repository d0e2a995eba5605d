"""RFC examples (tests/vectors/*.json) run through the JOSE code and the resource server's DPoP checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from warden.core.clock import FixedClock
from warden.jose import jwk_thumbprint, load_public_jwk, parse_compact
from warden.protocol.errors import InvalidDPoPProof
from warden.resource import DPoPVerifier
from warden.resource.dpop import access_token_hash

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((VECTORS / name).read_text())
    assert document["source"] and document["origin"] and document["handmade"] is False
    return document


def cases(name: str) -> list[Any]:
    return [pytest.param(v, id=v["name"]) for v in load(name)["vectors"]]


@pytest.mark.parametrize("vector", cases("rfc7638-3.1.json") + cases("rfc8037-A.json"))
def test_jwk_thumbprint(vector: dict[str, Any]) -> None:
    assert jwk_thumbprint(vector["jwk"]) == vector["thumbprint"]


@pytest.mark.parametrize("vector", cases("rfc7515-A.3.json") + cases("rfc8037-A.json"))
def test_jws_verifies_with_the_published_key(vector: dict[str, Any]) -> None:
    parsed = parse_compact(vector["jws"])
    key = load_public_jwk(vector["jwk"])
    parsed.verify(key, [vector["alg"]])
    if "payload" in vector:
        assert parsed.claims() == vector["payload"]
    else:
        assert parsed.payload.decode() == vector["payload_text"]
    tampered = vector["jws"][:-2] + ("AA" if not vector["jws"].endswith("AA") else "BB")
    with pytest.raises(ValueError):
        parse_compact(tampered).verify(key, [vector["alg"]])


RFC9449 = load("rfc9449-7.1.json")


def test_rfc9449_proof_key_thumbprint_is_the_published_jkt() -> None:
    assert jwk_thumbprint(RFC9449["jwk"]) == RFC9449["jkt"]


@pytest.mark.parametrize("vector", cases("rfc9449-7.1.json"))
def test_rfc9449_proofs_verify_with_their_header_key(vector: dict[str, Any]) -> None:
    parsed = parse_compact(vector["proof"])
    assert parsed.header["jwk"] == RFC9449["jwk"]
    parsed.verify(load_public_jwk(parsed.header["jwk"]), ["ES256"])
    assert parsed.claims() == vector["claims"]


def test_rfc9449_resource_request_proof_passes_the_resource_server_checks() -> None:
    vector = load("rfc9449-7.1.json")["vectors"][1]
    claims = vector["claims"]
    assert access_token_hash(vector["access_token"]) == claims["ath"]

    def verifier() -> DPoPVerifier:
        return DPoPVerifier(clock=FixedClock(claims["iat"]))

    args = {"method": "GET", "url": claims["htu"], "access_token": vector["access_token"], "jkt": RFC9449["jkt"]}
    assert verifier().validate_proof(vector["proof"], **args) == claims["jti"]
    for change in ({"access_token": "other"}, {"jkt": "x" * 43}, {"method": "POST"},
                   {"url": "https://resource.example.org/other"}):
        with pytest.raises(InvalidDPoPProof):
            verifier().validate_proof(vector["proof"], **{**args, **change})
    late = DPoPVerifier(clock=FixedClock(claims["iat"] + 3600))
    with pytest.raises(InvalidDPoPProof):
        late.validate_proof(vector["proof"], **args)
