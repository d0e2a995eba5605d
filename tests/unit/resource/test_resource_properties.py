"""Property tests: whatever arrives as a token or a request, only the declared errors come out (T39)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from resource_helpers import AUDIENCE, ISSUER, NOW, FakeIssuer

from warden.core.clock import FixedClock
from warden.jose import generate_private_key
from warden.protocol.errors import (
    InsufficientScope,
    InvalidDPoPProof,
    InvalidRequest,
    InvalidToken,
    OAuthError,
)
from warden.resource import Validator, parse_credentials
from warden.resource.dpop import normalize_htu


class _World:
    def __init__(self) -> None:
        self.clock = FixedClock(NOW)
        keys = {alg: generate_private_key(alg) for alg in ("ES256", "EdDSA")}
        self.issuer = FakeIssuer({alg: (key, alg) for alg, key in keys.items()}, self.clock)
        self.client = httpx.Client(transport=httpx.MockTransport(self.issuer))
        self.validator = Validator(ISSUER, AUDIENCE, http_client=self.client, clock=self.clock)
        self.valid = self.issuer.mint("ES256")
        self.validator.validate(self.valid)


@pytest.fixture(scope="module")
def world() -> Iterator[_World]:
    w = _World()
    yield w
    w.client.close()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
claim_names = st.sampled_from(["iss", "aud", "exp", "nbf", "iat", "sub", "client_id", "jti", "scope", "cnf",
                               "tenant"])
headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(["ES256", "EdDSA", "RS256", "none", "HS256", 7, None])},
    optional={"typ": st.sampled_from(["at+jwt", "JWT", "application/at+jwt", 1]), "kid": st.text(max_size=10) |
              st.sampled_from(["ES256", "EdDSA"]), "crit": json_values, "zip": json_values, "jwk": json_values},
)


def _only_invalid_token(world: _World, token: Any, **kwargs: Any) -> None:
    try:
        world.validator.validate(token, **kwargs)
    except InvalidToken:
        pass
    except InsufficientScope:
        assert kwargs.get("scopes"), "InsufficientScope without required scopes"
    except OAuthError as exc:  # pragma: no cover - reported with its reason
        raise AssertionError(f"unexpected {type(exc).__name__}: {exc.reason}") from None


common = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@common
@given(st.text(max_size=300))
def test_arbitrary_text_is_invalid_token(world: _World, token: str) -> None:
    _only_invalid_token(world, token)


@common
@given(st.lists(st.binary(max_size=80), min_size=1, max_size=6))
def test_arbitrary_segments_are_invalid_token(world: _World, segments: list[bytes]) -> None:
    _only_invalid_token(world, ".".join(b64(s) for s in segments))


@common
@given(headers, st.dictionaries(claim_names | st.text(max_size=6), json_values, max_size=10), st.binary(max_size=70))
def test_structured_but_forged_tokens_are_invalid_token(
    world: _World, header: dict[str, Any], claims: dict[str, Any], signature: bytes
) -> None:
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"
    _only_invalid_token(world, token)


@common
@given(st.data())
def test_mutated_valid_tokens_are_accepted_or_invalid_token(world: _World, data: st.DataObject) -> None:
    token = world.valid
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.sampled_from(list("AZaz09-_.=+/ é") + [""]))
    mutated = token[:position] + replacement + token[position + 1:]
    _only_invalid_token(world, mutated)


@common
@given(headers, st.dictionaries(claim_names, json_values, max_size=10))
def test_signed_tokens_with_arbitrary_claims_are_accepted_or_invalid_token(
    world: _World, header: dict[str, Any], claims: dict[str, Any]
) -> None:
    # Genuinely signed by the issuer, so every claim check is reached with hostile values.
    base = world.issuer.claims()
    base.update(claims)
    alg = header.get("alg")
    kid = "EdDSA" if alg == "EdDSA" else "ES256"
    extra = {k: v for k, v in header.items() if k != "alg"}
    token = world.issuer.mint(kid, header=extra, payload=json.dumps(base).encode())
    _only_invalid_token(world, token)
    _only_invalid_token(world, token, scopes=["read"])


@common
@given(st.lists(st.tuples(st.sampled_from(["authorization", "Authorization", "dpop", "x"]), st.text(max_size=40)),
                max_size=4), st.text(max_size=40))
def test_credential_parsing_raises_only_declared_errors(headers: list[tuple[str, str]], query: str) -> None:
    try:
        parse_credentials(headers, query)
    except (InvalidToken, InvalidRequest):
        pass


@common
@given(st.text(max_size=60))
def test_dpop_proof_parsing_raises_only_invalid_dpop_proof(world: _World, proof: str) -> None:
    from resource_helpers import thumbprint

    key = world.issuer.keys["ES256"][0]
    token = world.issuer.mint(cnf={"jkt": thumbprint(key)})
    try:
        world.validator.validate(token, scheme="DPoP", dpop_proof=proof, method="GET", url="https://api.test/")
    except InvalidDPoPProof:
        pass


@common
@given(st.text(max_size=60))
def test_htu_normalisation_raises_only_value_error(uri: str) -> None:
    try:
        normalize_htu(uri)
    except ValueError:
        pass
