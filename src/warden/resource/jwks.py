"""Issuer key discovery and JWK Set cache for resource servers (RFC 8414 §3, RFC 7517 §5).

The cache finds `jwks_uri` in the issuer's metadata (RFC 8414 §3.1 well-known
URI, then the appended form and OpenID Connect Discovery as fallbacks) and
requires the document's `issuer` to equal the configured one exactly (RFC 8414
§3.3, RFC 8725 §3.8: keys belong to one issuer).

Freshness follows the response's `Cache-Control: max-age` (minus `Age`),
clamped to `[min_ttl, max_ttl]`. A token naming an unknown `kid` triggers at
most one refetch per `refresh_cooldown`, shared by every thread and event loop
(single flight), so a flood of forged `kid`s cannot hammer the issuer
(RFC 8725 §3.10, SECURITY T36). A failed refresh keeps the last good key set
for up to `max_stale` seconds (stale-if-error, SECURITY F10); only when no key
set was ever obtained does validation answer 503 rather than 401.

Each key is pinned to the algorithm in its JWK `alg` member, or to the
registry algorithms its key type supports when `alg` is absent (RFC 8725 §3.1).
Keys with `use` other than `sig`, `key_ops` without `verify`, private members,
unsupported types or algorithms outside the allow-list are ignored.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
from collections.abc import Collection, Generator, Mapping
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from warden._drive import arun, run
from warden.core.algorithms import VERIFY_ALGS
from warden.core.clock import Clock, SystemClock
from warden.jose import ALGORITHMS, PublicKey, load_public_jwk
from warden.protocol.errors import InvalidToken, TemporarilyUnavailable

if TYPE_CHECKING:
    from warden.resource.metrics import ResourceMetrics
from warden.resource._fetch import (
    FetchError,
    Get,
    Response,
    discover,
    discovery_urls,
    fetch_async,
    fetch_sync,
    json_document,
    lifetime,
)

__all__ = ["DEFAULT_ALGORITHMS", "JWKSCache", "discovery_urls"]

logger = logging.getLogger("warden.resource")

DEFAULT_ALGORITHMS: tuple[str, ...] = VERIFY_ALGS
_MAX_KEYS = 100

_KeyIndex = dict[tuple[str | None, str], PublicKey]
_Effect = Get | concurrent.futures.Future[None]  # a GET to perform, or another caller's fetch to wait for


class JWKSCache:
    """Keys of one issuer, discovered, cached and refreshed under the rules above.

    Args:
        issuer: the issuer identifier, compared exactly with the metadata `issuer`.
        jwks_uri: skip discovery and fetch this JWK Set directly.
        algorithms: the allow-list keys may be used with (subset of the registry).
        min_ttl / max_ttl: bounds for the Cache-Control lifetime, in seconds.
        default_ttl: lifetime when the response has no usable Cache-Control.
        refresh_cooldown: minimum seconds between two fetch attempts.
        max_stale: how long the last good key set is served while refreshes fail.
        timeout: seconds for each HTTP request (and for waiting on another fetch).
        max_bytes: largest JWK Set document accepted.
        http_client / async_http_client: clients to use (owned by the caller);
            otherwise a short-lived client is created for each fetch.
        clock: time source (seconds since the epoch).
    """

    def __init__(
        self,
        issuer: str,
        *,
        jwks_uri: str | None = None,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        min_ttl: float = 60.0,
        max_ttl: float = 600.0,
        default_ttl: float = 300.0,
        refresh_cooldown: float = 30.0,
        max_stale: float = 86_400.0,
        timeout: float = 5.0,
        max_bytes: int = 512 * 1024,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        unknown = set(algorithms) - set(ALGORITHMS)
        if unknown or not algorithms:
            raise ValueError(f"unsupported algorithms: {sorted(unknown)}")
        if not 0 < min_ttl <= max_ttl:
            raise ValueError("need 0 < min_ttl <= max_ttl")
        self.issuer = issuer
        self.algorithms = tuple(a for a in DEFAULT_ALGORITHMS if a in algorithms)
        self._jwks_uri = jwks_uri
        self._min_ttl, self._max_ttl = min_ttl, max_ttl
        self._default_ttl = default_ttl
        self._cooldown = refresh_cooldown
        self._max_stale = max_stale
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._http_client = http_client
        self._async_http_client = async_http_client
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._keys: _KeyIndex = {}
        self._ever_loaded = False
        self._fresh_until = -math.inf
        self._stale_until = -math.inf
        self._last_attempt = -math.inf
        self._flight: concurrent.futures.Future[None] | None = None
        self.generation = 0
        """Incremented whenever a refresh removes or replaces a key (validation caches key on it)."""
        self.fetches = 0
        """Fetch attempts made so far (for metrics and tests)."""
        self.metrics: ResourceMetrics | None = None
        """Where fetches are counted (`warden.resource.metrics`); a `Validator` given metrics sets it."""

    def __repr__(self) -> str:
        return f"JWKSCache(issuer={self.issuer!r}, keys={len(self._keys)})"

    # -- lookup ---------------------------------------------------------------------------

    def peek(self, kid: str | None, alg: str) -> PublicKey | None:
        """Return the key for (`kid`, `alg`) if it is cached and fresh, without any I/O."""
        return self.fresh_key(kid, alg, self._clock.now())

    def fresh_key(self, kid: str | None, alg: str, now: float) -> PublicKey | None:
        """`peek` at a time the caller already read from the clock."""
        if now < self._fresh_until:
            return self._keys.get((kid, alg))
        return None

    def get_key(self, kid: str | None, alg: str) -> PublicKey:
        """Return the verification key for `kid` under `alg`, fetching if needed (blocking).

        Raises:
            InvalidToken: no key with that `kid` is usable with `alg`.
            TemporarilyUnavailable: no key set could ever be obtained from the issuer.
        """
        return run(self._key(kid, alg), self._perform)

    async def aget_key(self, kid: str | None, alg: str) -> PublicKey:
        """Async form of `get_key`: fetches with `httpx.AsyncClient`, never blocks the loop."""
        return await arun(self._key(kid, alg), self._aperform)

    def refresh(self) -> None:
        """Fetch the key set now, ignoring the cooldown (e.g. after a key compromise, F09)."""
        run(self._update(None, "", force=True), self._perform)

    async def arefresh(self) -> None:
        """Async form of `refresh`."""
        await arun(self._update(None, "", force=True), self._aperform)

    # -- the flows and their two drivers ------------------------------------------------

    def _key(self, kid: str | None, alg: str) -> Generator[_Effect, Response | None, PublicKey]:
        key = self.peek(kid, alg)
        if key is not None:
            return key
        yield from self._update(kid, alg, force=False)
        return self._resolve(kid, alg)

    def _update(self, kid: str | None, alg: str, *, force: bool) -> Generator[_Effect, Response | None, None]:
        """Fetch the key set, or wait for the fetch in flight, unless the cooldown forbids it."""
        flight, owner = self._claim(kid, alg, force=force)
        if owner:
            assert flight is not None
            try:
                if self._jwks_uri is None:
                    self._jwks_uri = yield from discover(self.issuer)
                response = yield Get(self._jwks_uri, self._max_bytes)
                assert response is not None
                self._install(response)
            except FetchError as exc:
                self._failed(exc)
            finally:
                self._land(flight)
        elif flight is not None and (force or (kid, alg) not in self._keys):
            yield flight

    def _perform(self, effect: _Effect) -> Response | None:
        if isinstance(effect, Get):
            return fetch_sync(self._http_client, effect, self._timeout)
        concurrent.futures.wait([effect], timeout=self._wait_timeout())
        return None

    async def _aperform(self, effect: _Effect) -> Response | None:
        if isinstance(effect, Get):
            return await fetch_async(self._async_http_client, effect, self._timeout)
        try:
            await asyncio.wait_for(asyncio.wrap_future(effect), self._wait_timeout())
        except TimeoutError:
            pass
        return None

    def _wait_timeout(self) -> float:
        return 3 * self._timeout + 1.0  # discovery + JWKS, plus slack

    def _claim(
        self, kid: str | None, alg: str, *, force: bool = False
    ) -> tuple[concurrent.futures.Future[None] | None, bool]:
        """Join the fetch in flight, or start one if the cooldown allows; (flight, owner)."""
        with self._lock:
            if self._flight is not None:
                return self._flight, False
            now = self._clock.now()
            if not force and now < self._last_attempt + self._cooldown:
                return None, False
            if not force and now < self._fresh_until and (kid, alg) in self._keys:
                return None, False  # another caller refreshed while we waited for the lock
            self._last_attempt = now
            self.fetches += 1
            flight: concurrent.futures.Future[None] = concurrent.futures.Future()
            # A running future cannot be cancelled by a waiter that gives up (asyncio.wrap_future).
            flight.set_running_or_notify_cancel()
            self._flight = flight
            return flight, True

    def _resolve(self, kid: str | None, alg: str) -> PublicKey:
        now = self._clock.now()
        key = self._keys.get((kid, alg))
        if key is not None and now < self._stale_until:
            return key
        if not self._ever_loaded or now >= self._stale_until:
            raise TemporarilyUnavailable("issuer keys unavailable", reason="jwks_unavailable",
                                         retry_after=max(1, math.ceil(self._cooldown)))
        raise InvalidToken("unknown signing key", reason="unknown_kid")  # RFC 8725 §3.10

    # -- fetching -------------------------------------------------------------------------

    def _land(self, flight: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._flight = None
        flight.set_result(None)

    def _failed(self, exc: FetchError) -> None:
        if self.metrics is not None:
            self.metrics.jwks_fetched(False)
        state = "serving the last good key set" if self._keys else "no key set yet"
        logger.warning("JWKS refresh for %s failed (%s); %s", self.issuer, exc, state)

    # -- key set ---------------------------------------------------------------------------

    def _install(self, response: Response) -> None:
        document = json_document(response, "JWK Set")
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise FetchError("JWK Set has no keys array")
        index = self._index(keys[:_MAX_KEYS])
        if not index:
            # An empty or unusable set is treated as a failure: keep what we had.
            raise FetchError("JWK Set has no usable signing key")
        now = self._clock.now()
        ttl = lifetime(response.headers, default=self._default_ttl, low=self._min_ttl, high=self._max_ttl)
        with self._lock:
            if _removed_any(self._keys, index):
                self.generation += 1
            self._keys = index
            self._ever_loaded = True
            self._fresh_until = now + ttl
            self._stale_until = now + ttl + self._max_stale
        logger.debug("JWKS for %s loaded: %d usable keys, ttl %.0fs", self.issuer, len(index), ttl)
        if self.metrics is not None:
            self.metrics.jwks_fetched(True)

    def _index(self, jwks: list[Any]) -> _KeyIndex:
        index: _KeyIndex = {}
        per_alg: dict[str, list[PublicKey]] = {}
        for jwk in jwks:
            if not isinstance(jwk, Mapping) or jwk.get("use", "sig") != "sig":
                continue
            key_ops = jwk.get("key_ops")
            if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
                continue
            kid = jwk.get("kid")
            if kid is not None and not isinstance(kid, str):
                continue
            try:
                key = load_public_jwk(jwk)
            except ValueError:
                continue
            declared = jwk.get("alg")
            if declared is not None:
                if declared not in self.algorithms or not ALGORITHMS[declared].key_matches(key):
                    continue
                algs: tuple[str, ...] = (declared,)
            else:
                algs = tuple(a for a in self.algorithms if ALGORITHMS[a].key_matches(key))
            for alg in algs:
                index.setdefault((kid, alg), key)
                per_alg.setdefault(alg, []).append(key)
        # A token without `kid` may use a key only when the choice is unambiguous.
        for alg, candidates in per_alg.items():
            if len(candidates) == 1:
                index.setdefault((None, alg), candidates[0])
        return index


def _fingerprints(index: _KeyIndex) -> set[tuple[str | None, str, bytes]]:
    return {
        (kid, alg, key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
        for (kid, alg), key in index.items()
    }


def _removed_any(old: _KeyIndex, new: _KeyIndex) -> bool:
    return bool(old) and not _fingerprints(old) <= _fingerprints(new)
