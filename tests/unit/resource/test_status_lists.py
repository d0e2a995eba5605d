"""StatusListCache: ttl-bounded caching, background refresh, single flight, stale-if-error, the failure policy."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from warden.jose import encode_header, generate_private_key, public_jwk, sign_compact
from warden.protocol.errors import InvalidToken, TemporarilyUnavailable
from warden.protocol.status_list import INVALID, StatusList, StatusReference, status_list_claims
from warden.resource import JWKSCache, StatusListCache, StatusPolicy

ISSUER = "https://as.example"
URI = f"{ISSUER}/oauth2/status/1"
KEY = generate_private_key("ES256")


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t


class Issuer:
    """A mock issuer serving a JWKS and one status list; `fail` makes the list answer 503."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.list = StatusList(64)
        self.fail = False
        self.requests = 0
        self.gate = threading.Event()
        self.gate.set()

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jwks":
            return httpx.Response(200, json={"keys": [public_jwk(KEY, kid="k1", alg="ES256")]})
        self.requests += 1
        self.gate.wait(5)
        if self.fail:
            return httpx.Response(503)
        now = int(self.clock.now())
        claims = status_list_claims(URI, now, now + 600, 60, self.list)
        token = sign_compact(encode_header({"alg": "ES256", "kid": "k1", "typ": "statuslist+jwt"}),
                             json.dumps(claims).encode(), KEY, "ES256")
        return httpx.Response(200, content=token.encode(), headers={"content-type": "application/statuslist+jwt"})


def _cache(clock: Clock, issuer: Issuer, **policy: object) -> StatusListCache:
    http = httpx.Client(transport=httpx.MockTransport(issuer.handle))
    jwks = JWKSCache(ISSUER, jwks_uri=f"{ISSUER}/jwks", http_client=http, clock=clock)
    return StatusListCache(jwks, policy=StatusPolicy(**policy), http_client=http, clock=clock)  # type: ignore[arg-type]


def test_a_list_is_fetched_once_then_read_from_memory_until_its_ttl():
    clock = Clock()
    issuer = Issuer(clock)
    cache = _cache(clock, issuer)
    for _ in range(1000):
        cache.check(StatusReference(URI, 5), clock.now())
    assert issuer.requests == 1
    issuer.list[5] = INVALID
    clock.t += 30  # within ttl (60 s) and before the refresh point (75 %): still the old list
    cache.check(StatusReference(URI, 5), clock.now())
    clock.t += 61  # past its lifetime: refetched before answering
    with pytest.raises(InvalidToken, match="revoked"):
        cache.check(StatusReference(URI, 5), clock.now())
    assert issuer.requests == 2


def test_a_list_due_for_refresh_is_refreshed_in_the_background_and_meanwhile_answers():
    clock = Clock()
    issuer = Issuer(clock)
    cache = _cache(clock, issuer)
    cache.check(StatusReference(URI, 5), clock.now())
    issuer.list[5] = INVALID
    issuer.gate.clear()  # the refresh hangs until released
    clock.t += 50  # past 75 % of 60 s
    started = time.monotonic()
    cache.check(StatusReference(URI, 5), clock.now())  # answered from the old list, not blocked
    assert time.monotonic() - started < 2
    issuer.gate.set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            cache.check(StatusReference(URI, 5), clock.now())
        except InvalidToken:
            break
        time.sleep(0.01)
    else:
        pytest.fail("background refresh never landed")


def test_concurrent_first_checks_share_one_fetch():
    clock = Clock()
    issuer = Issuer(clock)
    cache = _cache(clock, issuer)
    issuer.gate.clear()
    threads = [threading.Thread(target=cache.check, args=(StatusReference(URI, i), clock.now())) for i in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    issuer.gate.set()
    for t in threads:
        t.join(10)
    assert issuer.requests == 1


def test_stale_if_error_then_the_policy():
    clock = Clock()
    issuer = Issuer(clock)
    cache = _cache(clock, issuer, max_stale=100, cooldown=1)
    cache.check(StatusReference(URI, 5), clock.now())
    issuer.fail = True
    clock.t += 120  # fresh for 60, then stale-if-error up to 160
    cache.check(StatusReference(URI, 5), clock.now())
    clock.t += 50  # 170: beyond the bound, closed by default
    with pytest.raises(TemporarilyUnavailable):
        cache.check(StatusReference(URI, 5), clock.now())
    open_cache = _cache(clock, issuer, on_failure="open")
    open_cache.check(StatusReference(URI, 5), clock.now())  # never had a list; open accepts


def test_entries_out_of_range_and_lists_of_other_origins_are_refused():
    clock = Clock()
    issuer = Issuer(clock)
    cache = _cache(clock, issuer)
    with pytest.raises(InvalidToken, match="out of range"):
        cache.check(StatusReference(URI, 64), clock.now())
    with pytest.raises(InvalidToken, match="not the issuer's"):
        cache.check(StatusReference("https://evil.example/oauth2/status/1", 1), clock.now())
    assert issuer.requests == 1
