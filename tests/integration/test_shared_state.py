"""Shared state through a real Redis (`redis_url`): single-use records, cluster-wide limits, Redis down.

Each "node" is its own `SharedState` (its own connection pool) on one Redis, with a key prefix of
the test's own. The Redis-down tests run a private redis-server on a free port, stopped by PID.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from warden.protocol.errors import TemporarilyUnavailable
from warden.services.shared_state import ClusterRateLimiter, SharedState


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, started and stopped by PID."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/run has it: Debian package redis-server)")
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_racing_copies_of_one_jti_on_two_nodes_are_accepted_exactly_once(redis_url: str, redis_prefix: str) -> None:
    async def main() -> list[bool]:
        nodes = [SharedState(redis_url, prefix=redis_prefix) for _ in range(2)]
        try:
            exp = time.time() + 60
            return list(await asyncio.gather(*(nodes[i % 2].use_once("pkjwt:c1:same-jti", exp) for i in range(40))))
        finally:
            for node in nodes:
                await node.aclose()

    results = _run(main())
    assert results.count(True) == 1


def test_a_jti_record_expires_with_its_token(redis_url: str, redis_prefix: str) -> None:
    import redis

    async def main() -> tuple[bool, bool]:
        node = SharedState(redis_url, prefix=redis_prefix)
        try:
            return await node.use_once("dpop:x", time.time() + 30), await node.use_once("dpop:y", time.time() + 30)
        finally:
            await node.aclose()

    assert _run(main()) == (True, True)
    client = redis.Redis.from_url(redis_url)
    keys = client.keys(redis_prefix + "jti:*")
    assert len(keys) == 2
    assert all(0 < client.pttl(k) <= 31_000 for k in keys)
    client.delete(*keys)
    client.close()


def test_a_limit_holds_once_across_two_nodes(redis_url: str, redis_prefix: str) -> None:
    """Burst 10, no refill to speak of: alternating two nodes admits 10 in all, not 10 each (20). The
    one extra a node may admit is its first sight of the key, which starts full locally and is paid
    back from the shared bucket (see the next test)."""

    async def main() -> int:
        states = [SharedState(redis_url, prefix=redis_prefix) for _ in range(2)]
        limiters = [ClusterRateLimiter(s, "rate") for s in states]
        admitted = 0
        try:
            for i in range(40):
                limiter = limiters[i % 2]
                if limiter.take("client-a", 0.001, 10.0, time.time()) == 0.0:
                    admitted += 1
                assert await limiter.settle()
        finally:
            for s in states:
                await s.aclose()
        return admitted

    assert 10 <= _run(main()) <= 11


def test_what_nodes_over_admit_between_settles_is_paid_back(redis_url: str, redis_prefix: str) -> None:
    """Both nodes spend the burst before either settles (the worst case); the shared bucket goes into
    debt, so afterwards both refuse until the debt is refilled."""

    async def main() -> tuple[int, float, float]:
        states = [SharedState(redis_url, prefix=redis_prefix) for _ in range(2)]
        limiters = [ClusterRateLimiter(s, "rate") for s in states]
        try:
            now = time.time()
            first = sum(1 for limiter in limiters for _ in range(5) if limiter.take("k", 1.0, 5.0, now) == 0.0)
            for limiter in limiters:
                assert await limiter.settle()
            refused = [limiter.take("k", 1.0, 5.0, now) for limiter in limiters]  # touches: settled next
            assert all(wait > 0 for wait in refused)
            for limiter in limiters:
                assert await limiter.settle()
            return (first, limiters[0].peek("k", 1.0, 5.0, now), limiters[1].peek("k", 1.0, 5.0, now))
        finally:
            for s in states:
                await s.aclose()

    first, wait_a, wait_b = _run(main())
    assert first == 10  # each node started full: the over-admission the settle bound allows
    assert wait_a > 4.0 and wait_b > 4.0  # about five seconds of debt to refill before the next one


def test_the_failed_auth_budget_is_spent_once_for_the_cluster(redis_url: str, redis_prefix: str) -> None:
    from warden.services.auth_throttle import FailedAuthThrottle

    async def main() -> tuple[float, float]:
        states = [SharedState(redis_url, prefix=redis_prefix) for _ in range(2)]
        throttles = [FailedAuthThrottle(ClusterRateLimiter(s, "auth"), 6) for s in states]
        try:
            for i in range(6):  # three failures on each node
                throttles[i % 2].record_failure("10.0.0.1", "client-a", time.time())
                for t in (throttles[i % 2], throttles[1 - i % 2]):  # the failing node sends, the other reads
                    await t._limiter.settle()  # type: ignore[attr-defined]
            return throttles[0].wait("10.0.0.1", "client-a", time.time()), \
                throttles[1].wait("10.0.0.1", "client-b", time.time())
        finally:
            for s in states:
                await s.aclose()

    locked, other = _run(main())
    assert locked > 0  # spent on both nodes together
    assert other == 0.0  # another identity from the same source is untouched


def test_redis_unreachable_fails_jti_closed_and_limits_fall_back_to_each_nodes_share(
        private_redis: PrivateRedis) -> None:
    async def main() -> None:
        node_a = SharedState(private_redis.url, prefix="t:")
        node_b = SharedState(private_redis.url, prefix="t:")
        limiter = ClusterRateLimiter(node_a, "rate")
        other = ClusterRateLimiter(node_b, "rate")
        try:
            limiter.take("warm", 1.0, 10.0, time.time())
            other.take("warm", 1.0, 10.0, time.time())
            assert await limiter.settle() and await other.settle()
            limiter._members_at = 0.0  # participants are re-counted once a second; now, for the test
            assert await limiter.settle()
            assert limiter.participants == 2
            private_redis.stop()

            with pytest.raises(TemporarilyUnavailable) as refused:
                await node_a.use_once("pkjwt:c:j1", time.time() + 60)
            assert refused.value.status == 503 and refused.value.retry_after >= 1
            limiter.take("fresh", 1.0, 10.0, time.time())
            assert not await limiter.settle()
            assert node_a.up is False
            # local enforcement, this node's share: burst 10 over two participants -> 5
            now = time.time()
            admitted = sum(1 for _ in range(20) if limiter.take("client-x", 0.001, 10.0, now) == 0.0)
            assert admitted == 5

            private_redis.start()  # same port: recovery is automatic
            assert await limiter.settle()
            assert node_a.up is True
            assert await node_a.use_once("pkjwt:c:j1", time.time() + 60) is True
        finally:
            await node_a.aclose()
            await node_b.aclose()

    _run(main())


def test_the_settle_task_recovers_on_its_own(private_redis: PrivateRedis) -> None:
    async def main() -> None:
        state = SharedState(private_redis.url, prefix="t:")
        limiter = ClusterRateLimiter(state, "rate")
        limiter.start()
        try:
            limiter.take("a", 1.0, 5.0, time.time())
            await asyncio.sleep(0.05)
            private_redis.stop()
            limiter.take("a", 1.0, 5.0, time.time())
            for _ in range(100):
                if not state.up:
                    break
                await asyncio.sleep(0.02)
            assert state.up is False
            private_redis.start()
            for _ in range(200):
                if state.up:
                    break
                await asyncio.sleep(0.02)
            assert state.up is True
        finally:
            await limiter.stop()
            await state.aclose()

    _run(main())
