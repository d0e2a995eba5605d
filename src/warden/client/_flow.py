"""The token lifecycle for one (audience, scope set): a sans-I/O state machine.

One `TokenFlow` decides whether the cached token can be handed out, must be
renewed ahead of expiry, or must be fetched; and it runs an exchange (metadata
discovery when needed, the RFC 6749 §4.4.2 request, the §5.1/§5.2 answer) as a
generator that yields `Send` and `Sleep` steps to a driver. It never does I/O,
reads a clock or draws randomness except through injected objects, so it is
stepped by hand in tests and driven by threads or asyncio in production.

Timing (F12, F13, F16, T69):

- Lifetimes come from `expires_in` measured on the local monotonic clock from
  the moment the request was sent, never from the JWT `exp` (client clocks skew).
- Renewal is attempted at a point drawn uniformly from the last part of the
  token's life (`RefreshPolicy.refresh_window`), so clients that started
  together spread their renewals.
- While renewal fails, the still-valid token keeps being served; a token is
  never handed out after `expires_in` minus a small leeway, and then the
  failure is raised (fail closed).
- Retries after network errors, 5xx and 429 use capped exponential backoff with
  full jitter, plus any `Retry-After`, which is never undercut. Protocol errors
  (4xx) are not retried, and are answered from memory during the backoff so a
  misconfigured caller in a loop cannot hammer the server.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from warden.client._discovery import EndpointResolver
from warden.client._errors import NETWORK_ERROR, TokenError
from warden.client._messages import HTTPResponse, Reply, Send, Sleep, Step, TransportFailure
from warden.client._request import CacheKey, TokenRequestFactory
from warden.client._response import TokenResponse, parse_token_response
from warden.errors import ConfigError

if TYPE_CHECKING:
    from warden.client.metrics import ClientMetrics

__all__ = ["Clock", "Decision", "FlowCounters", "MonotonicClock", "RefreshPolicy", "RetryPolicy", "Token", "TokenFlow",
           "exchange_flow"]


class Clock(Protocol):
    """Seconds on a clock that only moves forward; differences are what matter."""

    def now(self) -> float: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


@dataclass(frozen=True)
class RefreshPolicy:
    """When a cached token is renewed, and when it stops being handed out.

    Args:
        refresh_window: (start, end) fractions of the token's lifetime. Renewal is
            attempted at a point drawn uniformly from this window (refresh ahead with jitter).
        expiry_leeway: seconds before expiry after which the token is no longer handed out,
            so it still lives when it reaches the resource server; capped at a tenth of the lifetime.
        default_expires_in: the lifetime assumed when the server omits `expires_in`
            (RFC 6749 §5.1 makes it optional; a short default is the safe choice, T63).
    """

    refresh_window: tuple[float, float] = (0.75, 0.9)
    expiry_leeway: float = 5.0
    default_expires_in: float = 60.0

    def __post_init__(self) -> None:
        start, end = self.refresh_window
        if not 0.0 < start <= end < 1.0:
            raise ConfigError("refresh_window must be (start, end) with 0 < start <= end < 1")
        if not 0.0 <= self.expiry_leeway < math.inf:
            raise ConfigError("expiry_leeway must be a non-negative number of seconds")
        if not 0.0 < self.default_expires_in < math.inf:
            raise ConfigError("default_expires_in must be a positive number of seconds")


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, and how long a caller may be kept waiting.

    After the n-th consecutive failure the next attempt waits
    `Retry-After (if any) + U(0, min(max_delay, base_delay * 2**(n-1)))`.

    Args:
        base_delay: the backoff scale in seconds.
        max_delay: the cap on the jittered part of each wait.
        max_attempts: attempts per blocking fetch before the error is raised.
        deadline: seconds a blocking fetch may take in total, waits included.
        max_retry_after: the cap applied to a server's `Retry-After`.
    """

    base_delay: float = 0.5
    max_delay: float = 30.0
    max_attempts: int = 4
    deadline: float = 30.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if not (0.0 < self.base_delay <= self.max_delay < math.inf):
            raise ConfigError("retry delays must satisfy 0 < base_delay <= max_delay")
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        if not (0.0 < self.deadline < math.inf and 0.0 <= self.max_retry_after < math.inf):
            raise ConfigError("deadline must be positive and max_retry_after non-negative")

    def backoff(self, failures: int, draw: float) -> float:
        """The jittered wait after `failures` consecutive failures, for a draw in [0, 1)."""
        exponent = min(max(failures - 1, 0), 62)
        return draw * min(self.max_delay, self.base_delay * 2.0**exponent)


@dataclass(frozen=True, repr=False)
class Token:
    """A cached access token and its schedule, on the local monotonic clock."""

    access_token: str
    token_type: str
    scope: tuple[str, ...] | None
    issued_at: float  # local time the request was sent: never later than the server's issue time
    expires_at: float
    usable_until: float
    refresh_at: float

    def __repr__(self) -> str:
        return (
            f"Token(token_type={self.token_type!r}, scope={self.scope!r}, expires_at={self.expires_at!r}, "
            f"refresh_at={self.refresh_at!r})"
        )


class Decision(Enum):
    USE = "use"  # hand out the cached token
    REFRESH = "refresh"  # hand out the cached token; one caller should try to renew it
    FETCH = "fetch"  # no usable token: callers must wait for a fetch


@dataclass
class FlowCounters:
    failures: int = 0
    tokens: int = 0
    renewals: int = 0


class TokenFlow:
    """The token lifecycle for one cache key. Not thread-safe: drivers serialize calls."""

    def __init__(
        self,
        key: CacheKey,
        *,
        requests: TokenRequestFactory,
        endpoint: EndpointResolver,
        clock: Clock,
        random: Callable[[], float],
        refresh: RefreshPolicy,
        retry: RetryPolicy,
        metrics: ClientMetrics | None = None,
    ) -> None:
        self.key = key
        self._metrics = metrics
        self._requests = requests
        self._endpoint = endpoint
        self._clock = clock
        self._random = random
        self._refresh = refresh
        self._retry = retry
        self.token: Token | None = None
        self.failures = 0  # consecutive; reset by success
        self.not_before = -math.inf
        self.last_error: TokenError | None = None
        self.counters = FlowCounters()
        self._nonce_changed = False

    def decide(self, now: float) -> Decision:
        token = self.token
        if token is None or now >= token.usable_until:
            return Decision.FETCH
        if now >= token.refresh_at and now >= self.not_before:
            return Decision.REFRESH
        return Decision.USE

    def usable(self, now: float) -> Token | None:
        token = self.token
        return token if token is not None and now < token.usable_until else None

    def next_attempt_at(self) -> float:
        """When a call would next contact the server (refresh point or end of backoff)."""
        token = self.token
        due = token.refresh_at if token is not None else -math.inf
        return max(due, self.not_before)

    def invalidate(self, access_token: str | None = None) -> bool:
        """Drop the cached token (only if it is `access_token`, when given); True if dropped.

        Naming the rejected token makes concurrent 401s cost one refetch, not one each.
        """
        token = self.token
        if token is None or (access_token is not None and token.access_token != access_token):
            return False
        self.token = None
        return True

    def exchange(self, *, refresh_ahead: bool) -> Generator[Step, Reply, Token]:
        """Obtain a token, yielding the I/O to perform; return the token to hand out or raise TokenError.

        With `refresh_ahead` the current token is still usable: one attempt is made
        and, if it fails, the current token is returned (stale while failing).
        Otherwise attempts continue with backoff until success, a non-retryable
        error, `max_attempts` or the `deadline`.
        """
        started = self._clock.now()
        if not refresh_ahead and self.last_error is not None:
            wait = self.not_before - started
            if wait > 0:
                if not self.last_error.retryable or wait > self._retry.deadline:
                    raise self.last_error.copy(retry_after=wait)
                yield Sleep(wait)  # the server asked for the pause (Retry-After) or backoff is running
        attempts = 0
        nonce_retried = False
        while True:
            try:
                return (yield from self._attempt())
            except TokenError as error:
                now = self._clock.now()
                if error.error == "use_dpop_nonce" and self._nonce_changed and not nonce_retried:
                    nonce_retried = True  # RFC 9449 §8: retry once with the nonce the server supplied
                    if self._metrics is not None:
                        self._metrics.retried()
                    continue
                attempts += 1
                delay = self._record_failure(error, now)
                if refresh_ahead:
                    current = self.usable(now)
                    if current is not None:
                        return current
                    raise
                if (
                    not error.retryable
                    or attempts >= self._retry.max_attempts
                    or now + delay - started > self._retry.deadline
                ):
                    raise
                if self._metrics is not None:
                    self._metrics.retried()
                yield Sleep(delay)

    def _attempt(self) -> Generator[Step, Reply, Token]:
        self._nonce_changed = False
        endpoint = yield from self._endpoint.resolve()
        request = self._requests.build(endpoint, self.key)
        sent_at = self._clock.now()
        reply = yield Send(request)
        if self._metrics is not None:
            self._metrics.fetched(max(0.0, self._clock.now() - sent_at))
        if not isinstance(reply, HTTPResponse):
            description = reply.description if isinstance(reply, TransportFailure) else "no response"
            raise TokenError(NETWORK_ERROR, f"token request failed: {description}", retryable=True)
        self._nonce_changed = self._requests.note_response(reply)
        parsed = parse_token_response(
            reply, dpop=self._requests.dpop_key is not None, max_retry_after=self._retry.max_retry_after
        )
        return self._store(parsed, sent_at)

    def _store(self, parsed: TokenResponse, sent_at: float) -> Token:
        lifetime = parsed.expires_in if parsed.expires_in is not None else self._refresh.default_expires_in
        start, end = self._refresh.refresh_window
        fraction = start + (end - start) * self._random()
        usable_until = sent_at + lifetime - min(self._refresh.expiry_leeway, lifetime / 10)
        token = Token(
            access_token=parsed.access_token,
            token_type=parsed.token_type,
            scope=parsed.scope,
            issued_at=sent_at,
            expires_at=sent_at + lifetime,
            usable_until=usable_until,
            refresh_at=min(sent_at + lifetime * fraction, usable_until),
        )
        if self.token is not None:
            self.counters.renewals += 1
            if self._metrics is not None:
                self._metrics.renewed()
        self.counters.tokens += 1
        self.token = token
        self.failures = 0
        self.not_before = -math.inf
        self.last_error = None
        return token

    def _record_failure(self, error: TokenError, now: float) -> float:
        self.failures += 1
        self.counters.failures += 1
        if self._metrics is not None:
            self._metrics.failed(error.error)
        delay = self._retry.backoff(self.failures, self._random()) + (error.retry_after or 0.0)
        error.retry_after = delay
        self.not_before = now + delay
        self.last_error = error
        return delay


def exchange_flow(
    requests: TokenRequestFactory,
    endpoint: EndpointResolver,
    subject_token: str,
    subject_token_type: str,
    key: CacheKey,
    max_retry_after: float = 300.0,
) -> Generator[Step, Reply, TokenResponse]:
    """One token exchange (RFC 8693 §2.1) of `subject_token` for `key`'s audience and scopes, yielding the I/O.

    Not cached and not retried: each subject token is exchanged when the caller asks (the answer is the
    caller's to keep). The one retry is RFC 9449 §8's, with the DPoP nonce the server has just supplied.
    Raises TokenError with the server's code (`invalid_grant`, `invalid_target`, `unauthorized_client`...).
    """
    for attempt in range(2):
        url = yield from endpoint.resolve()
        reply = yield Send(requests.build_exchange(url, subject_token, subject_token_type, key))
        if not isinstance(reply, HTTPResponse):
            description = reply.description if isinstance(reply, TransportFailure) else "no response"
            raise TokenError(NETWORK_ERROR, f"token exchange failed: {description}", retryable=True)
        nonce_changed = requests.note_response(reply)
        try:
            return parse_token_response(reply, dpop=requests.dpop_key is not None, max_retry_after=max_retry_after)
        except TokenError as error:
            if error.error != "use_dpop_nonce" or not nonce_changed or attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
