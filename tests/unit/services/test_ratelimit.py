"""Token buckets: one behaviour for both tables (in-process, shared memory), held once across processes,
and replacement of slots that never loses a lockout."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.services.ratelimit import (
    WAYS,
    InProcessRateLimiter,
    RateLimiter,
    SharedBuckets,
    SharedMemoryRateLimiter,
)

T0 = 1_700_000_000.0

Factory = Callable[[int], RateLimiter]
FACTORIES: dict[str, Factory] = {
    "in-process": lambda sets: InProcessRateLimiter(sets=sets),
    "shared": lambda sets: SharedMemoryRateLimiter(SharedBuckets.create(sets=sets)),
}


@pytest.fixture(params=sorted(FACTORIES))
def make(request: pytest.FixtureRequest) -> Factory:
    return FACTORIES[request.param]


def test_burst_then_refused_with_the_time_until_a_token(make: Factory):
    limiter = make(1024)
    assert [limiter.take("c", 2.0, 3.0, T0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("c", 2.0, 3.0, T0) == pytest.approx(0.5)  # one token every half second
    assert limiter.take("c", 2.0, 3.0, T0 + 0.25) == pytest.approx(0.25)
    assert limiter.take("c", 2.0, 3.0, T0 + 0.5) == 0.0
    assert limiter.take("other", 2.0, 3.0, T0 + 0.5) == 0.0  # keys have their own buckets


def test_a_refused_take_takes_nothing_and_peek_never_takes(make: Factory):
    limiter = make(1024)
    assert limiter.take("c", 1.0, 1.0, T0) == 0.0
    for _ in range(5):
        assert limiter.take("c", 1.0, 1.0, T0 + 0.5) == pytest.approx(0.5)
    assert limiter.take("c", 1.0, 1.0, T0 + 1.0) == 0.0  # refused attempts did not push it back
    for _ in range(5):
        assert limiter.peek("d", 1.0, 1.0, T0) == 0.0
    assert limiter.take("d", 1.0, 1.0, T0) == 0.0
    assert limiter.peek("d", 1.0, 1.0, T0) == pytest.approx(1.0)


def test_refill_stops_at_burst_and_a_clock_that_steps_back_refills_nothing(make: Factory):
    limiter = make(1024)
    assert limiter.take("c", 1.0, 2.0, T0) == 0.0
    assert limiter.take("c", 1.0, 2.0, T0) == 0.0
    assert limiter.take("c", 1.0, 2.0, T0 - 30) > 0  # earlier than the last take: no tokens appear
    admitted = sum(limiter.take("c", 1.0, 2.0, T0 + 1000) == 0.0 for _ in range(10))
    assert admitted == 2  # a long pause refills up to the burst, not beyond


def test_a_rate_of_zero_means_no_limit(make: Factory):
    limiter = make(1024)
    assert all(limiter.take("c", 0.0, 0.0, T0) == 0.0 for _ in range(100))


@given(steps=st.lists(st.tuples(st.floats(0, 5), st.booleans()), max_size=60),
       rate=st.floats(0.1, 50), burst=st.integers(1, 20))
def test_admissions_never_exceed_burst_plus_rate_times_elapsed(steps: list[tuple[float, bool]], rate: float,
                                                             burst: int):
    limiter = InProcessRateLimiter(sets=16)
    now, admitted = T0, 0
    for delay, peek in steps:
        now += delay
        if peek:
            limiter.peek("k", rate, burst, now)
        elif limiter.take("k", rate, burst, now) == 0.0:
            admitted += 1
    assert admitted <= burst + rate * (now - T0) + 1e-6


def test_a_lockout_survives_a_spray_of_other_keys_in_its_set(make: Factory):
    limiter = make(1)  # one set: every key competes for the same WAYS slots
    for _ in range(5):
        limiter.take("victim", 5 / 60, 5.0, T0)
    assert limiter.peek("victim", 5 / 60, 5.0, T0) > 0
    for i in range(2000):  # each spray key fails once: its bucket is full again within 12 s
        limiter.take(f"spray-{i}", 5 / 60, 5.0, T0 + i * 0.001)
    assert limiter.peek("victim", 5 / 60, 5.0, T0 + 3) > 0  # still locked: spray keys replaced each other


def test_a_full_set_gives_up_the_slot_closest_to_full(make: Factory):
    limiter = make(1)
    for i in range(WAYS):  # WAYS keys with 1..WAYS tokens spent (burst 10, 1 token/s)
        for _ in range(i + 1):
            limiter.take(f"k{i}", 1.0, 10.0, T0)
    limiter.take("newcomer", 1.0, 10.0, T0)  # replaces k0, the key closest to a full bucket
    for i in range(1, WAYS):
        assert limiter.peek(f"k{i}", 1.0, 10.0, T0) == 0.0
        admitted = sum(limiter.take(f"k{i}", 1.0, 10.0, T0) == 0.0 for _ in range(10))
        assert admitted == 10 - (i + 1)  # the others kept what they had spent


def test_every_limiter_on_one_shared_table_shares_each_bucket():
    shared = SharedBuckets.create(sets=64)
    workers = [SharedMemoryRateLimiter(shared), SharedMemoryRateLimiter(shared)]
    admitted = sum(workers[i % 2].take("c", 1.0, 10.0, T0) == 0.0 for i in range(40))
    assert admitted == 10
    assert InProcessRateLimiter(sets=64).take("c", 1.0, 10.0, T0) == 0.0  # a private table is separate


def _take_many(shared: SharedBuckets, start: multiprocessing.synchronize.Event, n: int,
               results: multiprocessing.queues.Queue[int]) -> None:
    limiter = SharedMemoryRateLimiter(shared)
    start.wait(10)
    results.put(sum(limiter.take("client", 1e-9, 50.0, T0) == 0.0 for _ in range(n)))


def test_processes_attached_to_one_table_admit_the_burst_once():
    """As `warden serve --workers 3`: tables created before the processes start, attached in each."""
    ctx = multiprocessing.get_context("spawn")
    shared = SharedBuckets.create(ctx, sets=64)
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_take_many, args=(shared, start, 200, results)) for _ in range(3)]
    for proc in procs:
        proc.start()
    start.set()
    counts = [results.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(10)
    assert sum(counts) == 50, counts  # per-process buckets would admit 150
