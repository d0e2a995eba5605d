"""Rate limiting behind one interface; in-process token buckets now, Redis later.

`RateLimiter.take` answers 0.0 when the request may proceed, otherwise the number
of seconds after which it may be retried (the `Retry-After` value).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol

__all__ = ["RateLimiter", "InProcessRateLimiter"]


class RateLimiter(Protocol):
    def take(self, key: str, rate: float, burst: float, now: float) -> float: ...


class InProcessRateLimiter:
    """Token buckets keyed by string; memory bounded by evicting the least recently used."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_keys = max_keys
        self._lock = threading.Lock()

    def take(self, key: str, rate: float, burst: float, now: float) -> float:
        if rate <= 0:
            return 0.0
        with self._lock:
            tokens, last = self._buckets.pop(key, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / rate
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
            return wait

    def peek(self, key: str, rate: float, burst: float, now: float) -> float:
        """Seconds until one token is available, without taking it."""
        with self._lock:
            tokens, last = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        return 0.0 if tokens >= 1.0 or rate <= 0 else (1.0 - tokens) / rate
