"""The status-list allocator: reservations of many clients share store writes, one in flight per client,
the next block reserved ahead; revocation and reuse rules hold; a store outage gives tokens no entry."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, cast

from warden.core.client import Client
from warden.core.revocation import StatusBlock
from warden.services.call import Call, ServingState
from warden.services.status_lists import StatusAllocator
from warden.settings import StatusListSettings
from warden.storage.memory import MemoryStore

T0 = 1_700_000_000.0
ISSUER = "https://as.example"


class CountingStore(MemoryStore):
    """A memory store that counts reservation writes and can fail or hold them."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[list[tuple[str, int]]] = []
        self.fail = False
        self.gate: threading.Event | None = None

    def reserve_status_blocks(self, wants: Sequence[tuple[str, int]], now: float, reusable_at: float,
                              list_size: int) -> list[StatusBlock]:
        if self.gate is not None:
            self.gate.wait(10)
        self.writes.append(list(wants))
        if self.fail:
            raise OSError("database unreachable")
        return super().reserve_status_blocks(wants, now, reusable_at, list_size)


def _world(**settings: Any) -> tuple[StatusAllocator, CountingStore]:
    store = CountingStore()
    state = SimpleNamespace(registry=SimpleNamespace(max_token_ttl=600), current_store=lambda: store,
                            is_serving=lambda: True)
    allocator = StatusAllocator(StatusListSettings(**settings), cast(ServingState, state), ISSUER, store_timeout=2.0)
    return allocator, store


def _call(client: Client, now: float) -> Call:
    return cast(Call, SimpleNamespace(now=now, status=None, authenticated=SimpleNamespace(client=client)))


async def _issue(allocator: StatusAllocator, call: Call) -> Call:
    waiting = allocator.assign_status(call)
    if waiting is not None:
        await waiting
    return call


def _entries(calls: Sequence[Call]) -> list[tuple[int, int]]:
    return [(c.status.list_id, c.status.idx) for c in calls if c.status is not None]


def test_first_tokens_of_many_clients_share_one_store_write() -> None:
    allocator, store = _world()
    clients = [Client(f"svc-{i}", f"svc-{i}", created_at=T0) for i in range(200)]

    async def run() -> list[Call]:
        # every client asks at once, some several times: each client is reserved for once, all in one write
        return list(await asyncio.gather(*(_issue(allocator, _call(c, T0)) for c in clients for _ in range(3))))

    calls = asyncio.run(run())
    assert len(store.writes) == 1 and sorted(store.writes[0]) == sorted((c.client_id, 16) for c in clients)
    entries = _entries(calls)
    assert len(entries) == 600 and len(set(entries)) == 600  # every token has its own entry
    blocks = {b.client_id: b for bs in store._status_blocks.values() for b in bs}
    for call in calls:  # each token's entry lies in its own client's block
        block = blocks[call.authenticated.client.client_id]
        assert call.status is not None and block.start <= call.status.idx < block.start + block.size


def test_reservations_queued_during_a_write_go_together_in_the_next() -> None:
    allocator, store = _world()
    store.gate = threading.Event()
    first = Client("first", "first", created_at=T0)
    others = [Client(f"svc-{i}", f"svc-{i}", created_at=T0) for i in range(50)]

    async def run() -> None:
        pending = asyncio.ensure_future(_issue(allocator, _call(first, T0)))
        await asyncio.sleep(0.05)  # the first write is under way, held by the gate
        rest = asyncio.gather(*(_issue(allocator, _call(c, T0)) for c in others))
        await asyncio.sleep(0.05)
        assert store.gate is not None
        store.gate.set()
        await pending
        await rest

    asyncio.run(run())
    assert [len(w) for w in store.writes] == [1, 50]


def test_a_busy_clients_next_block_is_reserved_ahead_and_its_tokens_do_not_wait() -> None:
    allocator, store = _world()
    client = Client("busy", "busy", created_at=T0)

    async def run() -> list[tuple[Call, bool]]:
        out = []
        for i in range(16 + 32 + 10):
            call = _call(client, T0 + i)
            waiting = allocator.assign_status(call)
            out.append((call, waiting is not None))
            if waiting is not None:
                await waiting
            pending = allocator._reserving.get("busy")
            if pending is not None:  # time passes between requests: the write made ahead lands
                await pending
        return out

    got = asyncio.run(run())
    assert [waited for _, waited in got].count(True) == 1  # only the very first token waited on the store
    assert [w for write in store.writes for w in write] == [("busy", 16), ("busy", 32), ("busy", 64)]
    entries = _entries([c for c, _ in got])
    assert len(set(entries)) == len(got)


def test_revoking_a_client_moves_it_to_a_block_reserved_after_the_revocation() -> None:
    allocator, store = _world()
    client = Client("svc", "svc", created_at=T0)
    store.create_client(client, [], [])

    async def run() -> tuple[Call, Call]:
        before = await _issue(allocator, _call(client, T0))
        revoked = dataclasses.replace(client, revoked_before=T0 + 5)
        store.update_client(revoked)
        after = await _issue(allocator, _call(revoked, T0 + 10))
        return before, after

    before, after = asyncio.run(run())
    assert before.status is not None and after.status is not None
    marks = store.load_status_marks(before.status.list_id, T0 + 10) or []
    assert any(s <= before.status.idx < s + n for s, n in marks)  # the token issued before reads revoked
    marks = store.load_status_marks(after.status.list_id, T0 + 10) or []
    assert not any(s <= after.status.idx < s + n for s, n in marks)  # the one issued after does not
    assert len(store.writes) == 2


def test_a_block_is_not_used_past_its_window_and_memory_forgets_idle_clients() -> None:
    allocator, store = _world(block_window=60)
    client = Client("svc", "svc", created_at=T0)

    async def run() -> tuple[Call, Call]:
        return await _issue(allocator, _call(client, T0)), await _issue(allocator, _call(client, T0 + 61))

    one, two = asyncio.run(run())
    assert one.status is not None and two.status is not None
    assert len(store.writes) == 2 and (one.status.list_id, one.status.idx) != (two.status.list_id, two.status.idx)
    allocator.forget_idle(T0 + 200)
    assert allocator._current == {} and allocator._ahead == {}


def test_a_store_outage_gives_tokens_no_entry_without_queueing_on_the_store() -> None:
    allocator, store = _world()
    store.fail = True
    clients = [Client(f"svc-{i}", f"svc-{i}", created_at=T0) for i in range(20)]

    async def run() -> list[Call]:
        first = list(await asyncio.gather(*(_issue(allocator, _call(c, T0)) for c in clients)))
        again = [await _issue(allocator, _call(c, T0 + 1)) for c in clients]  # within the retry pause
        return first + again

    calls = asyncio.run(run())
    assert all(c.status is None for c in calls)
    assert len(store.writes) == 1  # one failed write for the 20 clients, none during the pause


def test_a_token_that_needs_a_block_queued_ahead_has_it_written_at_once(monkeypatch: Any) -> None:
    monkeypatch.setattr(sys.modules[StatusAllocator.__module__], "_GATHER", 3600.0)
    allocator, store = _world()
    client = Client("svc", "svc", created_at=T0)

    async def run() -> list[Call]:
        calls = [await _issue(allocator, _call(client, T0 + i)) for i in range(16)]  # the 13th queued one ahead
        assert "svc" in allocator._queue and allocator._queue["svc"].ahead
        # the 17th needs it: it must not wait for the gathering (an hour here) to end
        calls.append(await asyncio.wait_for(_issue(allocator, _call(client, T0 + 16)), 30))
        return calls

    calls = asyncio.run(run())
    assert [w for write in store.writes for w in write] == [("svc", 16), ("svc", 32)]
    assert len(set(_entries(calls))) == 17


def test_a_revocation_within_the_second_of_a_blocks_reservation_marks_it() -> None:
    # iat has whole seconds, and a token from the revoking second counts as revoked: so must its entry
    allocator, store = _world()
    client = Client("svc", "svc", created_at=T0)
    store.create_client(client, [], [])

    async def run() -> Call:
        return await _issue(allocator, _call(client, T0 + 0.7))

    call = asyncio.run(run())
    store.update_client(dataclasses.replace(client, revoked_before=T0 + 0.3))  # after the block, same second
    assert call.status is not None
    marks = store.load_status_marks(call.status.list_id, T0 + 1) or []
    assert any(s <= call.status.idx < s + n for s, n in marks)


def test_a_request_older_than_a_block_does_not_take_an_entry_from_it() -> None:
    allocator, store = _world()
    client = Client("svc", "svc", created_at=T0)

    async def run() -> tuple[Call, Call]:
        later = await _issue(allocator, _call(client, T0 + 5))
        earlier = await _issue(allocator, _call(client, T0 + 3))  # started before that block was reserved
        return later, earlier

    later, earlier = asyncio.run(run())
    blocks = {(b.list_id, b.start): b for bs in store._status_blocks.values() for b in bs}
    for call in (later, earlier):
        assert call.status is not None
        block = next(b for (lid, start), b in blocks.items()
                     if lid == call.status.list_id and start <= call.status.idx < start + b.size)
        assert block.reserved_at <= call.now
    assert len(store.writes) == 2
