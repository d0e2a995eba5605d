"""No thundering herd: concurrent callers on a cold or stale cache share one token request."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from warden.client import ClientCredentials, TokenError

CALLERS = 250


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.002)


async def await_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.002)


def sync_source(mock_as, **kwargs) -> tuple[ClientCredentials, httpx.Client]:
    client = httpx.Client(transport=httpx.MockTransport(mock_as.handler))
    cc = ClientCredentials(
        mock_as.issuer,
        client_id="c1",
        client_secret="s1",
        audience="https://api.example",
        http_client=client,
        **kwargs,
    )
    return cc, client


def run_threads(target, count: int) -> tuple[list[object], list[threading.Thread]]:
    results: list[object] = [None] * count
    barrier = threading.Barrier(count)

    def call(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return results, threads


def test_threads_on_a_cold_cache_share_one_request(mock_as):
    mock_as.gate = threading.Event()
    cc, client = sync_source(mock_as)
    with client:
        results, threads = run_threads(cc.get_token, CALLERS)
        wait_until(lambda: cc.stats().misses == CALLERS)  # everyone is waiting on the one request
        mock_as.gate.set()
        for thread in threads:
            thread.join()
    assert results == ["at-1"] * CALLERS
    assert len(mock_as.token_requests) == 1 and mock_as.metadata_requests == 1


def test_threads_share_one_error_too(mock_as):
    mock_as.gate = threading.Event()
    mock_as.scripted.append(httpx.Response(401, json={"error": "invalid_client"}))
    cc, client = sync_source(mock_as)
    with client:
        results, threads = run_threads(cc.get_token, CALLERS)
        wait_until(lambda: cc.stats().misses == CALLERS)
        mock_as.gate.set()
        for thread in threads:
            thread.join()
    assert all(isinstance(r, TokenError) and r.error == "invalid_client" for r in results)
    assert len({id(r) for r in results}) == CALLERS  # each caller raises its own exception object
    assert len(mock_as.token_requests) == 1


def test_threads_during_refresh_get_the_cached_token_while_one_renews(mock_as):
    clock = _Clock()
    cc, client = sync_source(mock_as, clock=clock)
    with client:
        assert cc.get_token() == "at-1"
        clock.t += 290  # past any refresh point, before expiry
        mock_as.gate = threading.Event()
        results, threads = run_threads(cc.get_token, CALLERS)
        wait_until(lambda: len(mock_as.token_requests) == 2 and cc.stats().hits >= CALLERS - 1)
        mock_as.gate.set()
        for thread in threads:
            thread.join()
    assert results.count("at-1") >= CALLERS - 1  # nobody waited for the renewal except its leader
    assert len(mock_as.token_requests) == 2 and cc.get_token() == "at-2"


def test_tasks_on_a_cold_cache_share_one_request(mock_as):
    gate = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            await gate.wait()
        return mock_as.handler(request)

    async def scenario() -> list[str]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            cc = ClientCredentials(
                mock_as.issuer, client_id="c1", client_secret="s1", async_http_client=client
            )
            tasks = [asyncio.create_task(cc.aget_token()) for _ in range(CALLERS)]
            await await_until(lambda: cc.stats().misses == CALLERS)
            gate.set()
            return await asyncio.gather(*tasks)

    assert asyncio.run(scenario()) == ["at-1"] * CALLERS
    assert len(mock_as.token_requests) == 1


def test_cancelled_leader_hands_the_fetch_to_a_waiter(mock_as):
    gate = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token" and not mock_as.token_requests:
            mock_as.handler(request)  # record the first request, then hang until cancelled
            await gate.wait()
        return mock_as.handler(request)

    async def scenario() -> list[str]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            cc = ClientCredentials(
                mock_as.issuer, client_id="c1", client_secret="s1", async_http_client=client
            )
            leader = asyncio.create_task(cc.aget_token())
            await await_until(lambda: len(mock_as.token_requests) == 1)
            waiters = [asyncio.create_task(cc.aget_token()) for _ in range(CALLERS)]
            await await_until(lambda: cc.stats().misses == CALLERS + 1)
            leader.cancel()
            results = await asyncio.gather(*waiters)
            with pytest.raises(asyncio.CancelledError):
                await leader
            return results

    results = asyncio.run(scenario())
    assert set(results) == {"at-2"} and len(results) == CALLERS


def test_threads_and_tasks_on_several_loops_share_one_request(mock_as):
    mock_as.gate = threading.Event()
    sync_client = httpx.Client(transport=httpx.MockTransport(mock_as.handler))
    cc = ClientCredentials(
        mock_as.issuer, client_id="c1", client_secret="s1", http_client=sync_client, async_http_client=None
    )
    outcomes: list[object] = []

    def loop_worker() -> None:
        async def many() -> list[str]:
            return await asyncio.gather(*(cc.aget_token() for _ in range(50)))

        outcomes.extend(asyncio.run(many()))

    with sync_client:
        leader = threading.Thread(target=lambda: outcomes.append(cc.get_token()))
        leader.start()  # a sync leader holds the flight; async waiters on two loops join it
        wait_until(lambda: len(mock_as.token_requests) == 1)
        loops = [threading.Thread(target=loop_worker) for _ in range(2)]
        for thread in loops:
            thread.start()
        wait_until(lambda: cc.stats().misses == 101)
        mock_as.gate.set()
        for thread in [leader, *loops]:
            thread.join()
    assert outcomes == ["at-1"] * 101 and len(mock_as.token_requests) == 1


def test_sync_call_inside_the_leading_event_loop_does_not_deadlock(mock_as):
    gate = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            await gate.wait()
        return mock_as.handler(request)

    async def scenario() -> tuple[str, str]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as async_client:
            with httpx.Client(transport=httpx.MockTransport(mock_as.handler)) as sync_client:
                cc = ClientCredentials(
                    mock_as.issuer,
                    client_id="c1",
                    client_secret="s1",
                    http_client=sync_client,
                    async_http_client=async_client,
                )
                leader = asyncio.create_task(cc.aget_token())
                await await_until(lambda: cc.stats().misses == 1 and mock_as.metadata_requests >= 1)
                await asyncio.sleep(0.01)
                blocking = cc.get_token()  # on the loop's own thread: fetches alone instead of waiting
                gate.set()
                return blocking, await leader

    blocking, leader = asyncio.run(scenario())
    assert blocking.startswith("at-") and leader.startswith("at-")


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t
