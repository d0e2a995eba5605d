"""The storage contract for Token Status List indexes: blocks that never overlap, reuse only after expiry."""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from warden.core.client import Client
from warden.core.revocation import RevokedToken
from warden.storage.contract import Store

T0 = 1_700_000_000.0
SIZE = 64


def _ranges_overlap(blocks: list[tuple[int, int, int]]) -> bool:
    seen: set[tuple[int, int]] = set()
    for list_id, start, size in blocks:
        for i in range(start, start + size):
            if (list_id, i) in seen:
                return True
            seen.add((list_id, i))
    return False


def test_blocks_fill_a_list_then_open_the_next(store: Store) -> None:
    store.migrate()
    got = [store.reserve_status_block("svc-1", 16, T0, T0 + 100, SIZE) for _ in range(5)]
    assert [(b.list_id, b.start) for b in got] == [(1, 0), (1, 16), (1, 32), (1, 48), (2, 0)]
    assert store.load_status_lists(T0) == [1, 2]
    with pytest.raises(ValueError):
        store.reserve_status_block("svc-1", SIZE + 1, T0, T0 + 100, SIZE)


def test_list_ids_are_never_reused_and_spent_lists_are_gone(store: Store) -> None:
    store.migrate()
    for cid in ("svc-1", "svc-2", "svc-3"):
        store.create_client(Client(cid, cid, created_at=T0), [], [])
    store.reserve_status_block("svc-1", 32, T0, T0 + 100, SIZE)
    store.reserve_status_block("svc-2", 32, T0, T0 + 500, SIZE)   # list 1 is full, live until T0 + 500
    assert store.reserve_status_block("svc-1", 32, T0 + 200, T0 + 300, SIZE).list_id == 2
    store.revoke_token(RevokedToken("j", "svc-2", T0 + 400, status_list=1, status_idx=40))
    assert store.load_status_marks(1, T0 + 250) == [(40, 1)]
    assert store.load_status_lists(T0 + 250) == [1, 2]
    # T0 + 500: every token of list 1 has expired; it is gone, and no new block lands in it
    assert store.load_status_marks(1, T0 + 500) is None
    assert store.load_status_lists(T0 + 500) == []
    assert store.purge_status_blocks(T0 + 500) == 3
    assert store.reserve_status_block("svc-3", 32, T0 + 500, T0 + 900, SIZE).list_id == 2
    assert store.reserve_status_block("svc-3", 8, T0 + 500, T0 + 900, SIZE).list_id == 3


def test_marks_are_revoked_clients_blocks_deleted_clients_blocks_and_single_tokens(store: Store) -> None:
    store.migrate()
    for cid in ("svc-1", "svc-2", "svc-3"):
        store.create_client(Client(cid, cid, created_at=T0), [], [])
    b1 = store.reserve_status_block("svc-1", 8, T0, T0 + 100, SIZE)
    b2 = store.reserve_status_block("svc-2", 8, T0, T0 + 100, SIZE)
    b3 = store.reserve_status_block("svc-3", 8, T0, T0 + 100, SIZE)
    assert store.load_status_marks(1, T0) == []
    assert store.load_status_marks(99, T0) is None
    client = store.load_client("svc-1")
    assert client is not None
    store.update_client(dataclasses.replace(client, revoked_before=T0 + 1))
    store.delete_client("svc-2")
    store.revoke_token(RevokedToken("jti-x", "svc-3", T0 + 50, status_list=1, status_idx=b3.start + 2))
    assert store.load_status_marks(1, T0 + 10) == [(b1.start, 8), (b2.start, 8), (b3.start + 2, 1)]
    # a block reserved after the client's revocation holds tokens issued after it: not marked
    later = store.reserve_status_block("svc-1", 8, T0 + 2, T0 + 100, SIZE)
    assert (later.start, 8) not in (store.load_status_marks(1, T0 + 10) or [])
    # marks end with the tokens they cover
    assert store.load_status_marks(1, T0 + 60) == [(b1.start, 8), (b2.start, 8)]
    assert store.load_status_marks(1, T0 + 100) is None  # every token in the list has expired
    assert [r.status_idx for r in store.load_revoked_tokens(T0)] == [b3.start + 2]


def test_racing_reservations_on_one_database_never_share_an_index(open_sql_store: Callable[[], Store]) -> None:
    stores = [open_sql_store() for _ in range(4)]
    stores[0].migrate()

    def reserve(n: int) -> list[tuple[int, int, int]]:
        out = []
        for i in range(12):
            b = stores[n].reserve_status_block(f"svc-{n}", 5 + i % 3, T0, T0 + 100, SIZE)
            out.append((b.list_id, b.start, b.size))
        return out

    with ThreadPoolExecutor(max_workers=4) as pool:
        blocks = [b for f in [pool.submit(reserve, n) for n in range(4)] for b in f.result()]
    assert len(blocks) == 48 and not _ranges_overlap(blocks)
    assert all(start + size <= SIZE for _, start, size in blocks)


def _reserve_in_child(open_args: tuple[str | None, str, str | None], n: int,
                      out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from warden.storage.engine import open_store
    store = open_store(*open_args[:2], schema=open_args[2])
    try:
        out.put([(b.list_id, b.start, b.size) for b in
                 (store.reserve_status_block(f"p{n}", 7, T0, T0 + 100, SIZE) for _ in range(15))])
    finally:
        store.close()


def _blocks_from_processes(target: Callable[..., None], open_args: tuple[str | None, str, str | None],
                           processes: int = 3) -> list[tuple[int, int, int]]:
    """Run `target(open_args, n, queue)` in `processes` spawned processes at once; the blocks they reserved."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(open_args, n, out)) for n in range(processes)]
    for p in procs:
        p.start()
    blocks = [b for _ in procs for b in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return blocks


def test_reservations_from_several_processes_never_collide(open_sql_store: Callable[[], Store],
                                                           sql_open_args: tuple[str | None, str, str | None]) -> None:
    open_sql_store().migrate()
    blocks = _blocks_from_processes(_reserve_in_child, sql_open_args)
    assert len(blocks) == 45 and not _ranges_overlap(blocks)


def test_a_batch_places_its_blocks_in_order_as_single_reservations_would(store: Store) -> None:
    for cid in ("a", "b", "c", "d"):
        store.create_client(Client(cid, cid, created_at=T0), [], [])
    assert store.reserve_status_blocks([], T0, T0 + 100, SIZE) == []
    got = store.reserve_status_blocks([("a", 16), ("b", 32), ("c", 32), ("d", 8), ("a", 8)], T0, T0 + 100, SIZE)
    # c does not fit the 16 left in list 1: a new list; d and the second a go back to list 1, the lowest with room
    assert [(b.client_id, b.list_id, b.start, b.size) for b in got] == [
        ("a", 1, 0, 16), ("b", 1, 16, 32), ("c", 2, 0, 32), ("d", 1, 48, 8), ("a", 1, 56, 8)]
    assert all(b.reserved_at == T0 and b.reusable_at == T0 + 100 for b in got)
    assert store.load_status_lists(T0) == [1, 2]
    # a single reservation afterwards goes on where the batch stopped
    assert (store.reserve_status_block("b", 32, T0, T0 + 100, SIZE).list_id,
            store.reserve_status_block("b", 40, T0, T0 + 100, SIZE).list_id) == (2, 3)
    # every block of a batch is a block of its client: revoking the client marks each of them
    client = store.load_client("a")
    assert client is not None
    store.update_client(dataclasses.replace(client, revoked_before=T0 + 1))
    assert store.load_status_marks(1, T0 + 10) == [(0, 16), (56, 8)]
    assert store.load_status_marks(2, T0 + 10) == []
    assert store.load_status_lists(T0 + 100) == []  # reusable only once every token in them has expired


def test_a_batch_with_a_bad_size_reserves_nothing(store: Store) -> None:
    with pytest.raises(ValueError):
        store.reserve_status_blocks([("a", 8), ("b", SIZE + 1)], T0, T0 + 100, SIZE)
    assert store.load_status_lists(T0) == []
    assert store.reserve_status_block("a", 8, T0, T0 + 100, SIZE).start == 0


def _reserve_batches_in_child(open_args: tuple[str | None, str, str | None], n: int,
                              out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from warden.storage.engine import open_store
    store = open_store(*open_args[:2], schema=open_args[2])
    try:
        got = []
        for i in range(10):  # batches of several clients, mixed with single reservations
            wants = [(f"p{n}-c{k}", 3 + (i + k) % 5) for k in range(1 + i % 4)]
            got += store.reserve_status_blocks(wants, T0, T0 + 100, SIZE)
            got.append(store.reserve_status_block(f"p{n}-one", 6, T0, T0 + 100, SIZE))
        out.put([(b.list_id, b.start, b.size) for b in got])
    finally:
        store.close()


def test_batches_from_several_processes_never_collide(open_sql_store: Callable[[], Store],
                                                      sql_open_args: tuple[str | None, str, str | None]) -> None:
    open_sql_store().migrate()
    blocks = _blocks_from_processes(_reserve_batches_in_child, sql_open_args)
    assert len(blocks) == 3 * (23 + 10) and not _ranges_overlap(blocks)
    assert all(start + size <= SIZE for _, start, size in blocks)
