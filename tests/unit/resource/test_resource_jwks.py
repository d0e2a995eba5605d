"""JWKS cache: discovery, Cache-Control, single-flight refetch on unknown kid, stale-if-error (F08-F10)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from resource_helpers import AUDIENCE, ISSUER, FakeIssuer

from warden.core.clock import FixedClock
from warden.jose import PrivateKey, public_jwk
from warden.protocol.errors import InvalidToken, TemporarilyUnavailable
from warden.resource import JWKSCache, Validator
from warden.resource.jwks import discovery_urls


def test_discovery_then_jwks_are_fetched_once(validator: Validator, issuer: FakeIssuer) -> None:
    for alg in ("ES256", "RS256", "PS256", "EdDSA"):
        validator.validate(issuer.mint(alg))
    assert issuer.hits == {"metadata": 1, "jwks": 1}


def test_configured_jwks_uri_skips_discovery(make_validator: Callable[..., Validator], issuer: FakeIssuer) -> None:
    validator = make_validator(jwks_uri=f"{ISSUER}/oauth2/jwks")
    validator.validate(issuer.mint())
    assert issuer.hits == {"metadata": 0, "jwks": 1}


def test_metadata_for_another_issuer_is_not_trusted(validator: Validator, issuer: FakeIssuer) -> None:
    issuer.metadata_issuer = "https://issuer.test.evil"
    with pytest.raises(TemporarilyUnavailable) as caught:
        validator.validate(issuer.mint())
    assert caught.value.status == 503 and caught.value.retry_after >= 1
    assert issuer.hits["jwks"] == 0


def test_discovery_urls_follow_rfc8414_then_fallbacks() -> None:
    assert discovery_urls("https://as.test") == (
        "https://as.test/.well-known/oauth-authorization-server",
        "https://as.test/.well-known/openid-configuration",
    )
    assert discovery_urls("https://as.test/tenant/a") == (
        "https://as.test/.well-known/oauth-authorization-server/tenant/a",
        "https://as.test/tenant/a/.well-known/oauth-authorization-server",
        "https://as.test/tenant/a/.well-known/openid-configuration",
    )


def test_openid_configuration_is_used_when_rfc8414_metadata_is_absent(
    keys: dict[str, PrivateKey], clock: FixedClock
) -> None:
    issuer = FakeIssuer({"ES256": (keys["ES256"], "ES256")}, clock, issuer="https://idp.test/realms/x")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/realms/x/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": issuer.issuer, "jwks_uri": "https://idp.test/certs"})
        if request.url.path == "/certs":
            return httpx.Response(200, json=issuer.jwks())
        return httpx.Response(404)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        validator = Validator(issuer.issuer, AUDIENCE, http_client=client, clock=clock)
        validator.validate(issuer.mint())
    assert seen == [
        "/.well-known/oauth-authorization-server/realms/x",
        "/realms/x/.well-known/oauth-authorization-server",
        "/realms/x/.well-known/openid-configuration",
        "/certs",
    ]


def test_plain_http_jwks_uri_is_refused_for_an_https_issuer(
    keys: dict[str, PrivateKey], clock: FixedClock
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": "http://issuer.test/jwks"})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        cache = JWKSCache(ISSUER, http_client=client, clock=clock)
        with pytest.raises(TemporarilyUnavailable):
            cache.get_key("ES256", "ES256")


@pytest.mark.parametrize(("cache_control", "age", "ttl"), [
    ("max-age=120", None, 120),
    ("public, max-age=120", "20", 100),
    ("max-age=100000", None, 600),  # clamped to max_ttl
    ("max-age=1", None, 60),  # clamped to min_ttl
    ("no-store", None, 60),
    ("no-cache, max-age=300", None, 60),
    ("max-age=soon", None, 300),
    (None, None, 300),  # default
])
def test_cache_control_sets_the_key_set_lifetime_within_bounds(
    validator: Validator, issuer: FakeIssuer, clock: FixedClock, cache_control: str | None, age: str | None,
    ttl: int
) -> None:
    issuer.cache_control = cache_control
    issuer.age = age
    token = issuer.mint()
    validator.cache.max_ttl = 1  # re-verify on each call so key freshness is what we observe
    validator.validate(token)
    clock.advance(ttl - 2)
    validator.validate(issuer.mint())
    assert issuer.hits["jwks"] == 1
    clock.advance(2)
    validator.validate(issuer.mint())
    assert issuer.hits["jwks"] == 2


def test_unknown_kid_refetches_at_most_once_per_cooldown(
    validator: Validator, issuer: FakeIssuer, clock: FixedClock
) -> None:
    validator.validate(issuer.mint())
    clock.advance(31)
    for i in range(100):
        with pytest.raises(InvalidToken) as caught:
            validator.validate(issuer.mint(header={"kid": f"forged-{i}"}))
        assert caught.value.reason == "unknown_kid"
    assert issuer.hits["jwks"] == 2  # the initial load and a single refetch
    clock.advance(30)
    with pytest.raises(InvalidToken):
        validator.validate(issuer.mint(header={"kid": "forged-again"}))
    assert issuer.hits["jwks"] == 3


def test_a_thread_flood_of_forged_kids_causes_a_single_refetch(
    validator: Validator, issuer: FakeIssuer, clock: FixedClock
) -> None:
    validator.validate(issuer.mint())
    clock.advance(60)
    tokens = [issuer.mint(header={"kid": f"forged-{i}"}) for i in range(100)]
    errors: list[str] = []
    start = threading.Barrier(20)

    def attack(batch: list[str]) -> None:
        start.wait()
        for token in batch:
            try:
                validator.validate(token)
            except InvalidToken as exc:
                errors.append(exc.reason)

    threads = [threading.Thread(target=attack, args=(tokens[i::20],)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == ["unknown_kid"] * 100
    assert issuer.hits["jwks"] == 2


def test_async_flood_of_forged_kids_causes_a_single_refetch(
    validator: Validator, issuer: FakeIssuer, clock: FixedClock
) -> None:
    validator.validate(issuer.mint())
    clock.advance(60)

    async def flood() -> list[BaseException | object]:
        tokens = [issuer.mint(header={"kid": f"forged-{i}"}) for i in range(100)]
        return await asyncio.gather(*(validator.avalidate(t) for t in tokens), return_exceptions=True)

    results = asyncio.run(flood())
    assert all(isinstance(r, InvalidToken) and r.reason == "unknown_kid" for r in results)
    assert issuer.hits["jwks"] == 2


def test_async_first_load_is_shared_by_concurrent_requests(validator: Validator, issuer: FakeIssuer) -> None:
    async def burst() -> list[object]:
        tokens = [issuer.mint(alg) for alg in ("ES256", "RS256", "PS256", "EdDSA")] * 10
        return await asyncio.gather(*(validator.avalidate(t) for t in tokens))

    assert len(asyncio.run(burst())) == 40
    assert issuer.hits == {"metadata": 1, "jwks": 1}


def test_new_signing_key_is_picked_up_after_the_cooldown(
    validator: Validator, issuer: FakeIssuer, clock: FixedClock, other_keys: dict[str, PrivateKey]
) -> None:
    validator.validate(issuer.mint())
    issuer.keys["2025-rotated"] = (other_keys["ES256"], "ES256")
    rotated = issuer.mint("2025-rotated")
    with pytest.raises(InvalidToken):
        validator.validate(rotated)  # within the cooldown after the first load
    clock.advance(30)
    assert validator.validate(rotated).sub == "svc-orders"
    assert issuer.hits["jwks"] == 2


def test_issuer_down_keeps_serving_the_last_good_key_set(
    validator: Validator, issuer: FakeIssuer, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    validator.cache.max_ttl = 1
    validator.validate(issuer.mint())
    issuer.fail = True
    clock.advance(301)  # key set expired
    with caplog.at_level(logging.WARNING, logger="warden.resource"):
        for _ in range(50):
            validator.validate(issuer.mint())
            clock.advance(0.5)
    assert validator.jwks.fetches == 2  # one failed attempt in the cooldown window, not fifty
    assert "serving the last good key set" in caplog.text
    with pytest.raises(InvalidToken):
        validator.validate(issuer.mint(header={"kid": "unknown"}))  # 401, not 500
    issuer.fail = False
    clock.advance(30)
    validator.validate(issuer.mint())
    assert issuer.hits["jwks"] == 2


def test_stale_keys_are_dropped_after_max_stale(
    http_clients: tuple[httpx.Client, httpx.AsyncClient], issuer: FakeIssuer, clock: FixedClock
) -> None:
    jwks = JWKSCache(ISSUER, http_client=http_clients[0], clock=clock, max_stale=3600)
    jwks.get_key("ES256", "ES256")
    issuer.fail = True
    clock.advance(300 + 3599)
    jwks.get_key("ES256", "ES256")
    clock.advance(2)
    with pytest.raises(TemporarilyUnavailable):
        jwks.get_key("ES256", "ES256")


def test_issuer_unreachable_from_the_start_is_503_not_401(validator: Validator, issuer: FakeIssuer) -> None:
    issuer.fail = True
    with pytest.raises(TemporarilyUnavailable):
        validator.validate(issuer.mint())


@pytest.mark.parametrize("status", [500, 503, 301, 403])
def test_http_errors_from_the_jwks_endpoint_keep_the_old_keys(
    validator: Validator, issuer: FakeIssuer, clock: FixedClock, status: int
) -> None:
    validator.cache.max_ttl = 1
    validator.validate(issuer.mint())
    issuer.jwks_status = status
    clock.advance(301)
    validator.validate(issuer.mint())
    assert issuer.hits["jwks"] == 2


def test_an_empty_key_set_is_treated_as_a_failure(
    validator: Validator, issuer: FakeIssuer, clock: FixedClock
) -> None:
    validator.cache.max_ttl = 1
    validator.validate(issuer.mint())
    saved = dict(issuer.keys)
    issuer.keys.clear()
    clock.advance(301)
    validator.validate(issuer.mint("ES256", key=saved["ES256"][0]))
    assert issuer.hits["jwks"] == 2


def test_removed_key_invalidates_cached_validations(
    validator: Validator, issuer: FakeIssuer, clock: FixedClock
) -> None:
    # F09: emergency removal of a key; a forced refresh drops tokens it signed, even cached ones.
    token = issuer.mint("RS256")
    validator.validate(token)
    generation = validator.jwks.generation
    del issuer.keys["RS256"]
    validator.jwks.refresh()
    assert validator.jwks.generation == generation + 1
    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)
    assert caught.value.reason == "unknown_kid"
    validator.validate(issuer.mint("ES256"))


def test_adding_a_key_keeps_cached_validations(validator: Validator, issuer: FakeIssuer,
                                               other_keys: dict[str, PrivateKey]) -> None:
    for kid in ("RS256", "PS256", "EdDSA"):
        del issuer.keys[kid]
    token = issuer.mint()
    validator.validate(token)
    generation = validator.jwks.generation
    issuer.keys["next"] = (other_keys["EdDSA"], "EdDSA")
    validator.jwks.refresh()
    assert validator.jwks.generation == generation
    assert validator.cache.lookup(token, validator._clock.now(), generation) is not None


def test_a_second_key_for_an_algorithm_ends_kidless_matching(
    validator: Validator, issuer: FakeIssuer, other_keys: dict[str, PrivateKey]
) -> None:
    # A token without kid was accepted while one ES256 key existed; once a second one is
    # published the choice is ambiguous, so cached acceptances are dropped as well.
    token = issuer.mint(header={"kid": None})
    validator.validate(token)
    issuer.keys["next"] = (other_keys["ES256"], "ES256")
    validator.jwks.refresh()
    with pytest.raises(InvalidToken):
        validator.validate(token)


def test_async_forced_refresh(validator: Validator, issuer: FakeIssuer) -> None:
    asyncio.run(validator.jwks.arefresh())
    asyncio.run(validator.jwks.arefresh())
    assert issuer.hits["jwks"] == 2


def _cache_with(jwks: list[dict[str, Any]], clock: FixedClock, **kwargs: Any) -> tuple[JWKSCache, httpx.Client]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"keys": jwks})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    return JWKSCache(ISSUER, jwks_uri=f"{ISSUER}/jwks", http_client=client, clock=clock, **kwargs), client


def test_only_verification_keys_are_used(keys: dict[str, PrivateKey], clock: FixedClock) -> None:
    es = public_jwk(keys["ES256"], kid="es", alg="ES256")
    private = {**es, "kid": "private", "d": "AAAA"}
    jwks = [
        {**es, "kid": "enc", "use": "enc"},
        {**es, "kid": "sign-only", "key_ops": ["sign"]},
        {**es, "kid": "ops-verify", "key_ops": ["verify"]},
        private,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {**es, "kid": "wrong-alg", "alg": "RS256"},
        {**es, "kid": "hs", "alg": "HS256"},
        {**es, "kid": 7},
        "not a jwk",
        es,
    ]
    cache, client = _cache_with(jwks, clock)
    with client:
        assert cache.get_key("es", "ES256") is not None
        assert cache.get_key("ops-verify", "ES256") is not None
        for kid in ("enc", "sign-only", "private", "hmac", "wrong-alg", "hs"):
            with pytest.raises(InvalidToken):
                cache.get_key(kid, "ES256")


def test_keys_without_alg_are_pinned_to_their_key_type(keys: dict[str, PrivateKey], clock: FixedClock) -> None:
    cache, client = _cache_with([public_jwk(keys["RS256"], kid="rsa"), public_jwk(keys["ES256"], kid="ec")], clock)
    with client:
        cache.get_key("rsa", "RS256")
        cache.get_key("rsa", "PS256")
        cache.get_key("ec", "ES256")
        for kid, alg in (("rsa", "ES256"), ("ec", "RS256"), ("ec", "EdDSA")):
            with pytest.raises(InvalidToken):
                cache.get_key(kid, alg)


def test_algorithm_allow_list_applies_to_keys(keys: dict[str, PrivateKey], clock: FixedClock) -> None:
    cache, client = _cache_with([public_jwk(keys["RS256"], kid="rsa")], clock, algorithms=["PS256"])
    with client:
        cache.get_key("rsa", "PS256")
        with pytest.raises(InvalidToken):
            cache.get_key("rsa", "RS256")
    with pytest.raises(ValueError):
        JWKSCache(ISSUER, algorithms=["HS256"])


def test_token_without_kid_uses_the_only_matching_key(
    validator: Validator, issuer: FakeIssuer, other_keys: dict[str, PrivateKey]
) -> None:
    validator.validate(issuer.mint("EdDSA", header={"kid": None}))
    issuer.keys["second-ed"] = (other_keys["EdDSA"], "EdDSA")
    validator.jwks.refresh()
    with pytest.raises(InvalidToken):
        validator.validate(issuer.mint("EdDSA", header={"kid": None}, jti="another"))


def test_oversize_and_malformed_key_sets_are_failures(keys: dict[str, PrivateKey], clock: FixedClock) -> None:
    bodies = {
        "big": httpx.Response(200, content=b" " * 2048, headers={"content-type": "application/json"}),
        "notjson": httpx.Response(200, content=b"<html>"),
        "array": httpx.Response(200, json=[1]),
        "nokeys": httpx.Response(200, json={"keys": "x"}),
    }
    for name, response in bodies.items():
        with httpx.Client(transport=httpx.MockTransport(lambda request, r=response: r)) as client:
            cache = JWKSCache(ISSUER, jwks_uri=f"{ISSUER}/jwks", http_client=client, clock=clock, max_bytes=1024)
            with pytest.raises(TemporarilyUnavailable):
                cache.get_key("es", "ES256")
            assert cache.fetches == 1, name


def test_streamed_response_over_the_limit_is_abandoned(clock: FixedClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"{" + b" " * 600, b" " * 600 + b"}"]))

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        cache = JWKSCache(ISSUER, jwks_uri=f"{ISSUER}/jwks", http_client=client, clock=clock, max_bytes=1024)
        with pytest.raises(TemporarilyUnavailable):
            cache.get_key("es", "ES256")


def test_invalid_ttl_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        JWKSCache(ISSUER, min_ttl=0)
    with pytest.raises(ValueError):
        JWKSCache(ISSUER, min_ttl=700, max_ttl=600)
