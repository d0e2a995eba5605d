"""Validation cache: recognised until expiry, never accepting what a full validation refuses."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from resource_helpers import ALGS, AUDIENCE, DROP, ISSUER, NOW, FakeIssuer

from warden.core.clock import FixedClock
from warden.jose import PrivateKey, generate_private_key
from warden.protocol.errors import InsufficientScope, InvalidToken, OAuthError
from warden.resource import Validator


def test_a_validated_token_is_recognised_without_reverification(validator: Validator, issuer: FakeIssuer) -> None:
    token = issuer.mint()
    first = validator.validate(token)
    issuer.fail = True
    assert validator.validate(token) is first
    assert len(validator.cache) == 1


def test_expiry_is_rechecked_on_every_hit(validator: Validator, issuer: FakeIssuer, clock: FixedClock) -> None:
    validator.cache.max_ttl = 10_000
    token = issuer.mint(exp=int(NOW) + 600)
    validator.validate(token)
    clock.advance(629)
    validator.validate(token)
    clock.advance(1)
    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)
    assert caught.value.reason == "expired"


def test_not_before_is_rechecked_when_the_clock_moves_back(
    validator: Validator, issuer: FakeIssuer, clock: FixedClock
) -> None:
    token = issuer.mint(nbf=int(NOW), iat=DROP)
    validator.validate(token)
    clock.advance(-31)
    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)
    assert caught.value.reason == "nbf"


def test_cache_ttl_bounds_how_long_a_token_skips_verification(
    make_validator: Callable[..., Validator], issuer: FakeIssuer, clock: FixedClock
) -> None:
    validator = make_validator(cache_ttl=60)
    token = issuer.mint()
    first = validator.validate(token)
    clock.advance(59)
    assert validator.validate(token) is first
    clock.advance(1)
    second = validator.validate(token)
    assert second is not first and second == first


def test_scopes_are_checked_on_every_hit(validator: Validator, issuer: FakeIssuer) -> None:
    token = issuer.mint(scope="read")
    validator.validate(token, scopes=["read"])
    with pytest.raises(InsufficientScope):
        validator.validate(token, scopes=["write"])
    validator.validate(token)


def test_refused_tokens_are_not_cached(validator: Validator, issuer: FakeIssuer) -> None:
    for token in (issuer.mint(aud="https://other.test"), issuer.mint(exp=int(NOW) - 60), "x.y.z"):
        with pytest.raises(InvalidToken):
            validator.validate(token)
    assert len(validator.cache) == 0


def test_cache_is_bounded_and_evicts_the_least_recently_used(
    make_validator: Callable[..., Validator], issuer: FakeIssuer
) -> None:
    validator = make_validator(cache_size=3)
    tokens = [issuer.mint() for _ in range(4)]
    claims = [validator.validate(t) for t in tokens[:3]]
    assert validator.validate(tokens[0]) is claims[0]  # now the most recently used
    validator.validate(tokens[3])
    assert len(validator.cache) == 3
    assert validator.validate(tokens[0]) is claims[0]
    assert validator.validate(tokens[1]) is not claims[1]  # was evicted, validated afresh


def test_cache_can_be_disabled(make_validator: Callable[..., Validator], issuer: FakeIssuer) -> None:
    validator = make_validator(cache_size=0)
    token = issuer.mint()
    assert validator.validate(token) is not validator.validate(token)
    assert len(validator.cache) == 0
    validator.cache.clear()


# -- property: a cached validator and an uncached one always agree ---------------------------


class _World:
    """One issuer and two validators (cached, uncached) sharing a clock, built once."""

    def __init__(self) -> None:
        key = generate_private_key("ES256")
        self.clock = FixedClock(NOW)
        self.issuer = FakeIssuer({"ES256": (key, "ES256")}, self.clock)
        self.client = httpx.Client(transport=httpx.MockTransport(self.issuer))
        self.cached = Validator(ISSUER, AUDIENCE, http_client=self.client, clock=self.clock, cache_ttl=1e9)
        self.uncached = Validator(ISSUER, AUDIENCE, jwks=self.cached.jwks, clock=self.clock, cache_size=0)


@pytest.fixture(scope="module")
def world() -> Iterator[_World]:
    w = _World()
    yield w
    w.client.close()


def _outcome(validator: Validator, token: str, scopes: list[str]) -> str:
    try:
        validator.validate(token, scopes=scopes)
    except OAuthError as exc:
        return exc.reason
    return "ok"


offsets = st.integers(min_value=-120, max_value=120)


@settings(max_examples=150, deadline=None)
@given(
    exp=offsets, nbf=st.none() | offsets, iat=st.none() | offsets,
    moves=st.lists(st.tuples(st.integers(min_value=-90, max_value=90), st.sampled_from([[], ["read"], ["admin"]])),
                   min_size=1, max_size=8),
)
def test_cached_and_uncached_validation_always_agree(
    world: _World, exp: int, nbf: int | None, iat: int | None, moves: list[tuple[int, list[str]]]
) -> None:
    world.clock.advance(NOW - world.clock.now())
    world.cached.jwks.refresh()
    token = world.issuer.mint(
        exp=int(NOW) + exp, nbf=DROP if nbf is None else int(NOW) + nbf, iat=DROP if iat is None else int(NOW) + iat,
        scope="read",
    )
    for move, scopes in moves:
        world.clock.advance(move)
        assert _outcome(world.cached, token, scopes) == _outcome(world.uncached, token, scopes)


@pytest.mark.parametrize("alg", ALGS)
def test_cached_result_is_the_same_claims_for_every_algorithm(
    validator: Validator, issuer: FakeIssuer, alg: str, keys: dict[str, PrivateKey]
) -> None:
    token = issuer.mint(alg)
    assert validator.validate(token) is validator.validate(token)
