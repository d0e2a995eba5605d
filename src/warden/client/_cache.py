"""Token cache with single flight, and the thread and asyncio drivers of the sans-I/O flows.

Any number of callers (threads, asyncio tasks, or both, on any number of event
loops) that find the cache empty or stale for a key share one exchange: the
first becomes the leader and drives the flow; the others wait on the leader's
`Flight` and receive its token or its error. While a token is merely due for
refresh, one caller renews it and the rest are served the cached token at once.

A leader that is cancelled or interrupted abandons its flight: waiters then
start over and one of them leads, so no caller inherits another's cancellation.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from warden._drive import arun, run
from warden.client._errors import TokenError
from warden.client._flow import Clock, Decision, Token, TokenFlow
from warden.client._messages import Reply, Send, Sleep, Step
from warden.client._request import CacheKey
from warden.client._transport import HTTPXTransport

if TYPE_CHECKING:
    from warden.client.metrics import ClientMetrics

__all__ = ["CacheEntry", "Flight", "TokenCache", "TokenStats"]

Outcome = Token | TokenError | None  # None: abandoned by its leader


@dataclass(frozen=True)
class TokenStats:
    """Counters of one token source.

    Attributes:
        hits: calls answered from the cache without waiting for the network.
        misses: calls that had to wait for a token request.
        requests: HTTP requests sent to the authorization server (metadata included).
        failures: failed token or metadata attempts.
        tokens: tokens obtained.
        renewals: tokens obtained to replace an earlier one for the same key.
    """

    hits: int = 0
    misses: int = 0
    requests: int = 0
    failures: int = 0
    tokens: int = 0
    renewals: int = 0

    def __add__(self, other: TokenStats) -> TokenStats:
        return TokenStats(*(a + b for a, b in zip(self._values(), other._values(), strict=False)))

    def _values(self) -> tuple[int, int, int, int, int, int]:
        return (self.hits, self.misses, self.requests, self.failures, self.tokens, self.renewals)


@dataclass(frozen=True)
class CacheEntry:
    """What is cached for one key, without the token itself."""

    audience: str | None
    scope: tuple[str, ...]
    token_type: str
    expires_in: float  # seconds of life left on the local clock
    refresh_in: float  # seconds until the next contact with the server would be attempted


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Flight:
    """One exchange in progress for one key; threads and tasks on any loop may wait for it."""

    def __init__(self, leader_loop: asyncio.AbstractEventLoop | None) -> None:
        self.leader_loop = leader_loop
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._outcome: Outcome = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def finish(self, outcome: Outcome) -> None:
        with self._lock:
            self._outcome = outcome
            self._done.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that loop is closed; nobody is left to wake
                pass

    def wait(self) -> Outcome:
        self._done.wait()
        return self._outcome

    async def wait_async(self) -> Outcome:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._done.is_set():
                return self._outcome
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        await future
        return self._outcome


@dataclass(frozen=True)
class _Wait:
    """An effect: wait for another caller's exchange and receive its outcome."""

    flight: Flight


class TokenCache:
    """Flows per cache key, single flight, and the sync and async drivers."""

    def __init__(
        self,
        make_flow: Callable[[CacheKey], TokenFlow],
        *,
        clock: Clock,
        transport: HTTPXTransport,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: ClientMetrics | None = None,
    ) -> None:
        self._make_flow = make_flow
        self._metrics = metrics
        self._clock = clock
        self._transport = transport
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._lock = threading.Lock()
        self._flows: dict[CacheKey, TokenFlow] = {}
        self._flights: dict[CacheKey, Flight] = {}
        self._hits = 0
        self._misses = 0
        self._requests = 0

    # -- shared bookkeeping (callers hold no lock) -------------------------------------------

    def _admit(
        self, key: CacheKey, count: bool, loop: asyncio.AbstractEventLoop | None
    ) -> tuple[Token | None, TokenFlow, Flight | None, bool, bool]:
        """Return (token to hand out now, flow, flight, is_leader, refresh_ahead)."""
        with self._lock:
            flow = self._flows.get(key)
            if flow is None:
                flow = self._flows[key] = self._make_flow(key)
            decision = flow.decide(self._clock.now())
            flight = self._flights.get(key)
            metrics = self._metrics
            if decision is Decision.USE or (decision is Decision.REFRESH and flight is not None):
                if count:
                    self._hits += 1
                    if metrics is not None:
                        metrics.hit()
                return flow.token, flow, None, False, False
            if count:
                if decision is Decision.REFRESH:
                    self._hits += 1
                    if metrics is not None:
                        metrics.hit()
                else:
                    self._misses += 1
                    if metrics is not None:
                        metrics.miss()
            if flight is not None:
                return None, flow, flight, False, False
            flight = self._flights[key] = Flight(loop)
            return None, flow, flight, True, decision is Decision.REFRESH

    def _settle(self, outcome: Outcome) -> Token | None:
        if isinstance(outcome, TokenError):
            raise outcome.copy()
        if outcome is not None and self._clock.now() < outcome.usable_until:
            return outcome
        return None  # abandoned, or expired while waiting: start over

    def _release(self, key: CacheKey, flight: Flight, outcome: Outcome) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.finish(outcome)

    # -- one flow, two drivers ---------------------------------------------------------------

    def get(self, key: CacheKey) -> Token:
        """Return a usable token for `key`, fetching it (once, for all concurrent callers) if needed."""
        return run(self._obtain(key, None), self._perform)

    async def aget(self, key: CacheKey) -> Token:
        """Async twin of `get`; waiters on any event loop share one exchange."""
        return await arun(self._obtain(key, asyncio.get_running_loop()), self._aperform)

    def _perform(self, effect: Step | _Wait) -> Reply | Outcome:
        if isinstance(effect, Send):
            return self._transport.send(effect.request)
        if isinstance(effect, Sleep):
            self._sleep(effect.seconds)
            return None
        return effect.flight.wait()

    async def _aperform(self, effect: Step | _Wait) -> Reply | Outcome:
        if isinstance(effect, Send):
            return await self._transport.asend(effect.request)
        if isinstance(effect, Sleep):
            await self._async_sleep(effect.seconds)
            return None
        return await effect.flight.wait_async()

    def _obtain(self, key: CacheKey, loop: asyncio.AbstractEventLoop | None) -> Generator[Step | _Wait, Any, Token]:
        """Hand out the cached token, lead an exchange, or wait for the leader's (`loop`: the caller's, if async)."""
        count = True
        while True:
            token, flow, flight, lead, refresh_ahead = self._admit(key, count, loop)
            count = False
            if token is not None:
                return token
            assert flight is not None
            if lead:
                return (yield from self._lead(key, flow, flight, refresh_ahead))
            if loop is None and flight.leader_loop is not None and flight.leader_loop is _running_loop():
                # The leader is a task of the loop this thread runs: blocking here would stop it for good.
                return (yield from self._exchange(flow.exchange(refresh_ahead=False)))
            settled = self._settle((yield _Wait(flight)))
            if settled is not None:
                return settled

    def _lead(self, key: CacheKey, flow: TokenFlow, flight: Flight,
              refresh_ahead: bool) -> Generator[Step, Reply, Token]:
        outcome: Outcome = None
        try:
            outcome = yield from self._exchange(flow.exchange(refresh_ahead=refresh_ahead))
            return outcome
        except TokenError as error:
            outcome = error
            raise
        finally:
            self._release(key, flight, outcome)

    def _exchange(self, exchange: Generator[Step, Reply, Token]) -> Generator[Step, Reply, Token]:
        """The flow's own steps, counting requests under the lock (a cancellation closes the flow)."""
        with closing(exchange):
            reply: Reply = None
            try:
                while True:
                    with self._lock:
                        step = exchange.send(reply)
                        if isinstance(step, Send):
                            self._requests += 1
                    reply = yield step
            except StopIteration as stop:
                result: Token = stop.value
                return result

    # -- inspection and control --------------------------------------------------------------

    def peek(self, key: CacheKey) -> Token | None:
        """The cached token if it is usable, without I/O and without starting a renewal (counted as a hit)."""
        with self._lock:
            flow = self._flows.get(key)
            token = None if flow is None else flow.usable(self._clock.now())
            if token is not None:
                self._hits += 1
                if self._metrics is not None:
                    self._metrics.hit()
            return token

    def has_token(self, key: CacheKey) -> bool:
        with self._lock:
            flow = self._flows.get(key)
            return flow is not None and flow.usable(self._clock.now()) is not None

    def invalidate(self, key: CacheKey, access_token: str | None = None) -> bool:
        with self._lock:
            flow = self._flows.get(key)
            return flow is not None and flow.invalidate(access_token)

    def clear(self) -> None:
        with self._lock:
            for flow in self._flows.values():
                flow.invalidate()

    def stats(self) -> TokenStats:
        with self._lock:
            flows = list(self._flows.values())
            return TokenStats(
                hits=self._hits,
                misses=self._misses,
                requests=self._requests,
                failures=sum(f.counters.failures for f in flows),
                tokens=sum(f.counters.tokens for f in flows),
                renewals=sum(f.counters.renewals for f in flows),
            )

    def entries(self) -> tuple[CacheEntry, ...]:
        with self._lock:
            now = self._clock.now()
            out = []
            for (audience, scopes), flow in self._flows.items():
                token = flow.usable(now)
                if token is not None:
                    out.append(
                        CacheEntry(
                            audience,
                            tuple(sorted(scopes)),
                            token.token_type,
                            token.expires_at - now,
                            max(flow.next_attempt_at() - now, 0.0),
                        )
                    )
            return tuple(out)

    def next_attempt_in(self, key: CacheKey) -> float | None:
        with self._lock:
            flow = self._flows.get(key)
            return None if flow is None else max(flow.next_attempt_at() - self._clock.now(), 0.0)

    def flow(self, key: CacheKey) -> TokenFlow | None:
        with self._lock:
            return self._flows.get(key)

    def __repr__(self) -> str:
        return f"TokenCache(keys={len(self._flows)})"
