"""Short-lived state shared by every node through Redis (`redis_url`): limits and single-use records.

What lives here, and how each part behaves:

- **Single-use `jti` records** (client assertions, DPoP proofs, federated tokens with
  `single_use`): one `SET key 1 NX PX ttl` per record, so of racing copies on any nodes exactly
  one is accepted. This is the one Redis round trip on a request's path, and only on requests that
  carry such a record. Redis unreachable: the check fails closed, `503 temporarily_unavailable`
  with `Retry-After` (never accepted unchecked, never a 500).
- **Rate limits and the failed-authentication throttle** (`ClusterRateLimiter`): every decision is
  local (no I/O on the request's path, the `RateLimiter` seam is synchronous). Each node keeps a
  local estimate of each bucket it touched; a background task settles with Redis as soon as a key
  is touched and at most once every `interval` (5 ms): it sends what this node took since the last
  settle, one Lua script applies it to the shared bucket (refilled by Redis's own clock, so node
  clocks may disagree) and answers the shared level, which becomes the local estimate. The shared
  bucket may go into debt (down to minus the burst): what nodes over-admit between two settles is
  paid back by later refusals, so over a window the total admitted stays at burst + rate x window
  within a constant (about one settle interval's worth per node), whatever the window's length.
  A key a node has not seen yet starts full locally and is corrected at its first settle.
- **Redis unreachable**: limits fall back to local enforcement, each participant (node worker) its
  share: the rate and burst divided by the number of participants seen in Redis at the last
  settle. `warden_shared_state_up` goes to 0, one warning is logged, and settling retries every
  half second; recovery is automatic (the next settle reads the shared levels again).
- **DPoP nonces** need no shared state: they are derived from the key-encryption key, which every
  node shares, so any node accepts another's (`warden.protocol.dpop.DPoPNonces`).

Redis holds nothing that cannot be lost: losing it resets limits and forgets `jti` records, whose
lifetimes are seconds to minutes (an assertion's `exp` still bounds any replay).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from typing import Any

from warden.protocol.errors import TemporarilyUnavailable
from warden.services.ratelimit import TokenBuckets, refilled

__all__ = ["ClusterRateLimiter", "SharedState"]

log = logging.getLogger("warden.server")

_SETTLE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
for i, key in ipairs(KEYS) do
  local b = (i - 1) * 3
  local used, rate, burst = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local state = redis.call('HMGET', key, 'v', 't')
  local level = burst
  if state[1] then
    level = math.min(burst, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate)
  end
  if used > 0 then
    level = math.max(level - used, -burst)
    redis.call('HSET', key, 'v', tostring(level), 't', tostring(now))
    redis.call('PEXPIRE', key, math.ceil((burst - level) / rate * 1000) + 1000)
  end
  out[i] = tostring(level)
end
return out
"""
_MEMBER_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 5)
redis.call('EXPIRE', KEYS[1], 60)
return redis.call('ZCARD', KEYS[1])
"""
_BATCH = 500  # keys per script call
_RETRY_DOWN = 0.5  # seconds between attempts while Redis is unreachable
_WATCH = 2.0  # seconds a key near its limit is re-read at every settle
_WATCH_REFRESH = 0.05  # seconds between settles while some keys are watched and nothing else happens
_IDLE = 30.0  # a local estimate untouched this long is forgotten


class SharedState:
    """One Redis connection pool for a process, with the up/down state every user of it shares.

    `redis` is imported here only: a process without `redis_url` never loads it.
    """

    def __init__(self, url: str, prefix: str = "warden:", timeout: float = 0.5) -> None:
        import redis.asyncio as aioredis

        self.client: Any = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                                   health_check_interval=10)
        self.prefix = prefix
        self.up = True
        self._down_since = 0.0
        self.on_change: list[Any] = []  # callables(up: bool), e.g. the metrics gauge

    def mark(self, up: bool, error: BaseException | None = None) -> None:
        if up == self.up:
            return
        self.up = up
        if up:
            log.info("Redis reachable again: limits and single-use records are shared across nodes")
        else:
            self._down_since = time.monotonic()
            log.warning("Redis unreachable (%s): limits fall back to each node's share, single-use checks "
                        "answer 503", type(error).__name__ if error else "error")
        for callback in self.on_change:
            callback(up)

    async def use_once(self, key: str, exp: float) -> bool:
        """True if `key` was not used before (and is now recorded until `exp`, epoch seconds); False if it
        was. Raises TemporarilyUnavailable when Redis cannot be reached: a replay check fails closed."""
        from redis.exceptions import RedisError

        if not self.up and time.monotonic() - self._down_since < _RETRY_DOWN:
            raise TemporarilyUnavailable("shared state unavailable", reason="shared_state_unavailable")
        ttl_ms = max(1000, int((exp - time.time()) * 1000) + 1000)
        name = self.prefix + "jti:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        try:
            stored = await self.client.set(name, b"1", nx=True, px=ttl_ms)
        except (RedisError, OSError) as exc:
            self.mark(False, exc)
            raise TemporarilyUnavailable("shared state unavailable", reason="shared_state_unavailable") from None
        self.mark(True)
        return bool(stored)

    async def ping(self) -> bool:
        from redis.exceptions import RedisError

        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            self.mark(False, exc)
            return False
        self.mark(True)
        return True

    async def aclose(self) -> None:
        await self.client.aclose()


class _Bucket:
    __slots__ = ("burst", "level", "rate", "stamp", "touched", "unsent")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.level, self.stamp, self.unsent = burst, now, 0.0
        self.rate, self.burst, self.touched = rate, burst, now


class ClusterRateLimiter(TokenBuckets):
    """Token buckets that hold once for the cluster: local decisions, settled with Redis in batches.

    Used on the event loop's thread only (takes and the settle task share state without locks).
    """

    def __init__(self, shared: SharedState, namespace: str, interval: float = 0.005) -> None:
        self._shared = shared
        self._prefix = f"{shared.prefix}rl:{namespace}:"
        self._members = f"{shared.prefix}members:{namespace}"
        self._member_id = f"{os.getpid()}-{os.urandom(6).hex()}"
        self._interval = interval
        self._buckets: dict[str, _Bucket] = {}
        self._dirty: set[str] = set()
        self._watched: dict[str, float] = {}  # keys near their limit -> re-read until (monotonic)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.participants = 1  # participants seen at the last settle: the fallback share
        self._members_at = 0.0
        self._settle_sha: str | None = None
        self._forgot_at = 0.0

    # the RateLimiter seam (take and peek: TokenBuckets) ------------------------
    def _spend(self, key: str, rate: float, burst: float, now: float, take: bool) -> float:
        bucket = self._buckets.get(key)
        shared = self._shared.up
        if not shared:  # each participant enforces its share
            share = max(1, self.participants)
            rate, burst = rate / share, max(1.0, burst / share)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(rate, burst, now)
        elif bucket.rate != rate or bucket.burst != burst:
            bucket.rate, bucket.burst = rate, burst
            bucket.level = min(bucket.level, burst)
        bucket.level = refilled(bucket.level, bucket.stamp, rate, burst, now)
        bucket.stamp = max(bucket.stamp, now)
        bucket.touched = now
        if shared:
            self._dirty.add(key)
            self._wake.set()
        if shared and bucket.level < burst / 2 + 1:  # near the limit: what other nodes take matters now
            self._watched[key] = time.monotonic() + _WATCH
        wait = self._decide(bucket.level, rate)
        if take and not wait:
            bucket.level -= 1.0
            if shared:
                bucket.unsent += 1.0
        return wait

    # settling -------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            if self._shared.up:
                if self._watched:  # keys near their limit are re-read even when this node takes nothing
                    try:
                        await asyncio.wait_for(self._wake.wait(), _WATCH_REFRESH)
                    except TimeoutError:
                        pass
                else:
                    await self._wake.wait()
            self._wake.clear()
            ok = await self.settle()
            await asyncio.sleep(self._interval if ok else _RETRY_DOWN)

    async def settle(self) -> bool:
        """Send what was taken since the last settle and read the shared levels; False if Redis failed."""
        from redis.exceptions import NoScriptError, RedisError

        client = self._shared.client
        try:
            now = time.monotonic()
            if now - self._members_at >= 1.0:
                self.participants = int(await client.eval(_MEMBER_SCRIPT, 1, self._members, self._member_id))
                self._members_at = now
            if self._settle_sha is None:
                self._settle_sha = await client.script_load(_SETTLE_SCRIPT)
            recovering = not self._shared.up
            if self._watched:
                expired = [k for k, until in self._watched.items() if until < now or k not in self._buckets]
                for key in expired:
                    del self._watched[key]
            keys = list(self._buckets) if recovering else list(self._dirty.union(self._watched))
            self._dirty.clear()
            for start in range(0, len(keys), _BATCH):
                batch = keys[start:start + _BATCH]
                sent: list[float] = []
                args: list[str] = []
                for key in batch:
                    bucket = self._buckets[key]
                    used = 0.0 if recovering else bucket.unsent
                    bucket.unsent = 0.0
                    sent.append(used)
                    args += [repr(used), repr(bucket.rate), repr(bucket.burst)]
                names = [self._prefix + key for key in batch]
                try:
                    levels = await client.evalsha(self._settle_sha, len(names), *names, *args)
                except NoScriptError:
                    self._settle_sha = await client.script_load(_SETTLE_SCRIPT)
                    levels = await client.evalsha(self._settle_sha, len(names), *names, *args)
                for key, level in zip(batch, levels, strict=True):
                    current = self._buckets.get(key)
                    if current is not None:  # what was taken while the answer travelled still counts
                        current.level = min(float(level), current.burst) - current.unsent
        except (RedisError, OSError) as exc:
            self._shared.mark(False, exc)
            return False
        self._shared.mark(True)
        if now - self._forgot_at >= 1.0:
            self._forgot_at = now
            self._forget_idle()
        return True

    def _forget_idle(self) -> None:
        if len(self._buckets) < 1024:
            return
        horizon = max(b.touched for b in self._buckets.values()) - _IDLE
        for key in [k for k, b in self._buckets.items() if b.touched < horizon and b.unsent == 0]:
            del self._buckets[key]
