"""The registry's bounded client cache: full preload when it fits, else the hot part, loaded on a miss.

A `CountingStore` wraps the memory store and counts the miss path's queries, so each test says how
many database lookups a sequence of requests costs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from warden.core.client_metadata import parse_client_metadata
from warden.core.clock import FixedClock
from warden.protocol.errors import TemporarilyUnavailable
from warden.services.admin import Admin, GrantSpec
from warden.services.audit import AuditSink
from warden.services.client_cache import AbsentClients, ClientCache
from warden.services.kek import KeyMaterial
from warden.services.keyring import Keyring
from warden.services.registry import Registry
from warden.storage.contract import ClientRecord
from warden.storage.memory import MemoryStore

MATERIAL = KeyMaterial.from_kek(b"k" * 32)
API = "https://api.example"
ISSUER = "https://ci.example"


class CountingStore(MemoryStore):
    """The memory store, counting the registry's miss-path queries; `during_lookup` runs inside one."""

    def __init__(self) -> None:
        super().__init__()
        self.record_queries: list[list[str]] = []
        self.federated_queries = 0
        self.during_lookup: Callable[[], None] | None = None

    def load_client_records(self, client_ids: Sequence[str]) -> list[ClientRecord]:
        self.record_queries.append(list(client_ids))
        found = super().load_client_records(client_ids)
        if self.during_lookup is not None:
            hook, self.during_lookup = self.during_lookup, None
            hook()
        return found

    def load_federated_client_ids(self, issuer: str, subject: str) -> list[str]:
        self.federated_queries += 1
        return super().load_federated_client_ids(issuer, subject)


class World:
    def __init__(self, clients: int, cache_size: int, **registry_args: Any) -> None:
        self.store, self.clock = CountingStore(), FixedClock()
        self.admin = Admin(self.store, MATERIAL, self.clock, AuditSink())
        Keyring(self.store, MATERIAL, self.clock, AuditSink()).ensure_keys(["ES256"])
        self.admin.save_api(API, ["read"])
        self.ids = [f"c{i:04d}" for i in range(clients)]
        for client_id in self.ids:
            self.admin.create_client(client_id, [GrantSpec(API, ("read",))], client_id=client_id)
        self.registry = Registry(self.store, MATERIAL, cache_size=cache_size, clock=self.clock.now,
                                 **registry_args)
        self.registry.load(self.clock.now())
        self.store.record_queries.clear()

    def lookup(self, *client_ids: str) -> list[Any]:
        async def run() -> list[Any]:
            return list(await asyncio.gather(*(self.registry.client(c) for c in client_ids)))
        return asyncio.run(run())

    @property
    def queries(self) -> int:
        return len(self.store.record_queries)


# the two bounded structures ---------------------------------------------------------
def test_client_cache_evicts_the_least_recently_used() -> None:
    cache: ClientCache[str] = ClientCache(2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # a is now the most recent
    assert cache.put("c", "C") == 1
    assert "b" not in cache and cache.get("a") == "A" and cache.get("c") == "C"
    assert cache.peek("a") == "A" and len(cache) == 2 and cache.evictions == 1
    assert cache.replace({"x": "X", "y": "Y", "z": "Z"}) == 1 and sorted(cache.values()) == ["Y", "Z"]
    with pytest.raises(KeyError):
        cache["nope"]


def test_absent_clients_expire_and_stay_bounded() -> None:
    absent = AbsentClients(capacity=3, ttl=10)
    for i in range(5):
        absent.add(f"u{i}", now=100.0 + i)
    assert len(absent) == 3
    assert not absent.contains("u0", 105.0) and not absent.contains("u1", 105.0)
    assert absent.contains("u4", 105.0)
    assert not absent.contains("u4", 114.0)  # added at 104, remembered 10 s
    absent.discard("u3")
    assert not absent.contains("u3", 105.0)
    off = AbsentClients(capacity=0, ttl=10)
    off.add("u", 1.0)
    assert not off.contains("u", 1.0)


# a registry that fits --------------------------------------------------------------
def test_a_registry_that_fits_is_loaded_whole_and_never_looks_up_a_miss() -> None:
    world = World(clients=20, cache_size=50)
    registry = world.registry
    assert registry.complete and len(registry.clients) == 20
    assert world.lookup("c0003")[0].client.client_id == "c0003"
    assert world.lookup("nobody") == [None]
    assert registry.is_known_absent("nobody")
    assert world.queries == 0


def test_a_registry_that_grows_past_the_cache_size_turns_partial_and_still_finds_everyone() -> None:
    world = World(clients=5, cache_size=5)
    assert world.registry.complete
    world.admin.create_client("late", [GrantSpec(API, ("read",))], client_id="late")
    world.registry.refresh(world.clock.now())
    assert not world.registry.complete and len(world.registry.clients) == 5
    found = world.lookup(*world.ids, "late")
    assert [e.client.client_id for e in found] == [*world.ids, "late"]


# a partial registry: the miss path --------------------------------------------------
def test_a_large_registry_starts_empty_and_loads_clients_on_their_first_request() -> None:
    world = World(clients=30, cache_size=10)
    registry = world.registry
    assert not registry.complete and len(registry.clients) == 0
    entry = world.lookup("c0007")[0]
    assert entry.client.client_id == "c0007" and entry.grants[0].api == API and len(entry.secrets) == 1
    assert world.queries == 1
    assert world.lookup("c0007")[0] is entry  # a hit
    assert world.queries == 1


def test_concurrent_misses_share_one_query_and_each_id_is_asked_once() -> None:
    world = World(clients=30, cache_size=25)
    found = world.lookup("c0001", "c0002", "c0001", "c0003", "c0002", "nobody")
    assert [e.client.client_id if e else None for e in found] == ["c0001", "c0002", "c0001", "c0003", "c0002", None]
    assert world.store.record_queries == [["c0001", "c0002", "c0003", "nobody"]]


def test_the_cache_holds_at_most_cache_size_clients_evicting_the_least_recently_used() -> None:
    world = World(clients=30, cache_size=10)
    for client_id in world.ids:
        world.lookup(client_id)
    assert len(world.registry.clients) == 10
    assert "c0029" in world.registry.clients and "c0000" not in world.registry.clients
    queries = world.queries
    assert world.lookup("c0000")[0].client.client_id == "c0000"  # evicted, so loaded again
    assert world.queries == queries + 1


def test_unknown_ids_are_remembered_for_the_negative_ttl() -> None:
    world = World(clients=30, cache_size=10, negative_ttl=10)
    assert world.lookup("ghost") == [None]
    assert world.lookup("ghost", "ghost") == [None, None]
    assert world.queries == 1
    world.clock.advance(11)
    assert world.lookup("ghost") == [None]
    assert world.queries == 2


def test_ids_no_client_can_have_cost_no_query() -> None:
    world = World(clients=30, cache_size=10)
    assert world.lookup("bad id", "x" * 200, "") == [None, None, None]
    assert world.queries == 0


def test_a_client_created_after_its_id_was_found_unknown_is_found_after_the_next_poll() -> None:
    world = World(clients=30, cache_size=10)
    assert world.lookup("newcomer") == [None]
    world.admin.create_client("newcomer", [GrantSpec(API, ("read",))], client_id="newcomer")
    world.registry.refresh(world.clock.now())
    assert world.lookup("newcomer")[0].client.client_id == "newcomer"


def test_the_lookup_budget_refuses_beyond_miss_rate_with_503_and_recovers() -> None:
    world = World(clients=30, cache_size=10, miss_rate=2)
    assert world.lookup("u1", "u2") == [None, None]
    with pytest.raises(TemporarilyUnavailable) as refused:
        world.lookup("u3")
    assert refused.value.reason == "registry_busy" and refused.value.retry_after > 0
    assert world.lookup("u1") == [None]  # remembered: no budget needed
    world.clock.advance(1)
    assert world.lookup("u3") == [None]
    assert world.queries == 2


def test_a_spray_of_unknown_ids_costs_a_bounded_number_of_queries() -> None:
    world = World(clients=30, cache_size=10, miss_rate=50)
    spray = [f"spray-{i}" for i in range(500)]
    answered = refused = 0
    for start in range(0, len(spray), 100):
        try:
            answered += len(world.lookup(*spray[start:start + 100]))
        except TemporarilyUnavailable:
            refused += 1
    looked_up = sum(len(q) for q in world.store.record_queries)
    assert looked_up <= 50  # the burst; the clock did not move
    assert refused > 0 and world.queries <= looked_up


# a partial registry follows the change log --------------------------------------------
def test_changes_reload_cached_clients_and_touch_no_others() -> None:
    world = World(clients=30, cache_size=10)
    world.lookup("c0001", "c0002")
    world.store.record_queries.clear()
    world.admin.update_client("c0001", enabled=False)
    world.admin.rotate_secret("c0002", grace=0)
    world.admin.update_client("c0020", enabled=False)  # not cached
    world.admin.delete_client("c0003")  # not cached
    world.registry.refresh(world.clock.now())
    assert world.store.record_queries == [["c0001", "c0002"]]  # the cached ones, in one query
    assert world.registry.clients["c0001"].client.enabled is False
    assert world.registry.clients["c0002"].secrets == tuple(world.store.load_secrets("c0002"))
    assert world.lookup("c0020")[0].client.enabled is False
    assert world.lookup("c0003") == [None]


def test_a_deleted_cached_client_is_dropped() -> None:
    world = World(clients=30, cache_size=10)
    world.lookup("c0005")
    world.admin.delete_client("c0005")
    world.registry.refresh(world.clock.now())
    assert "c0005" not in world.registry.clients
    assert world.lookup("c0005") == [None]


def test_a_lookup_that_races_with_a_change_of_its_client_is_answered_but_not_kept() -> None:
    world = World(clients=30, cache_size=10)

    def change_meanwhile() -> None:
        world.admin.update_client("c0004", enabled=False)
        world.registry.refresh(world.clock.now())

    world.store.during_lookup = change_meanwhile
    assert world.lookup("c0004")[0] is not None
    assert "c0004" not in world.registry.clients  # what was read may predate the change
    assert world.lookup("c0004")[0].client.enabled is False


def test_blocking_lookup_for_synchronous_callers() -> None:
    world = World(clients=30, cache_size=10)
    assert world.registry.client_blocking("c0009").client.client_id == "c0009"  # type: ignore[union-attr]
    assert world.registry.client_blocking("ghost") is None
    assert world.registry.client_blocking("ghost") is None
    assert world.queries == 2


# workload identities ----------------------------------------------------------------
def _bind(world: World, client_id: str, *subjects: str) -> None:
    meta = parse_client_metadata({"federated": [{"issuer": ISSUER, "subject": s} for s in subjects]})
    if client_id in world.store._clients:
        world.admin.update_client(client_id, metadata=meta)
    else:
        world.admin.create_client(client_id, [GrantSpec(API, ("read",))], client_id=client_id,
                                  auth_method="private_key_jwt", metadata=meta)


def federated(world: World, subject: str) -> frozenset[str]:
    return asyncio.run(world.registry.federated_clients(ISSUER, subject))


def test_federated_identities_of_a_partial_registry_come_from_the_store_index() -> None:
    world = World(clients=30, cache_size=10)
    _bind(world, "fed-a", "repo:x")
    _bind(world, "fed-b", "repo:x", "repo:y")
    world.registry.refresh(world.clock.now())
    assert federated(world, "repo:x") == {"fed-a", "fed-b"}
    assert federated(world, "repo:x") == {"fed-a", "fed-b"}
    assert federated(world, "repo:none") == frozenset()
    assert world.store.federated_queries == 2  # answers, empty ones included, are cached
    _bind(world, "fed-a", "repo:z")  # an uncached client changes its binding
    world.registry.refresh(world.clock.now())
    assert federated(world, "repo:x") == {"fed-b"}
    world.lookup("fed-b")  # now cached: its change is applied precisely
    assert federated(world, "repo:none") == frozenset()
    _bind(world, "fed-b", "repo:none")
    world.registry.refresh(world.clock.now())
    assert federated(world, "repo:x") == frozenset() and federated(world, "repo:none") == {"fed-b"}
    world.admin.delete_client("fed-b")
    world.registry.refresh(world.clock.now())
    assert federated(world, "repo:none") == frozenset()


def test_federated_identities_of_a_complete_registry_come_from_memory() -> None:
    world = World(clients=3, cache_size=10)
    _bind(world, "fed-a", "repo:x")
    world.registry.refresh(world.clock.now())
    assert federated(world, "repo:x") == {"fed-a"}
    assert world.store.federated_queries == 0


def test_recency_is_kept_once_the_cache_is_half_full_and_drives_eviction():
    from warden.services.client_cache import ClientCache

    cache: ClientCache[str] = ClientCache(4)
    cache.put("a", "A")
    assert list(cache._entries) == ["a"] and not cache._tracking  # far from full: a hit costs nothing more
    cache.put("b", "B")
    assert cache._tracking
    cache.get("a")  # now used after b
    cache.put("c", "C")
    cache.put("d", "D")
    assert cache.put("e", "E") == 1
    assert cache.peek("b") is None and cache.peek("a") == "A"  # the least recently used went, not the oldest
    full = ClientCache[str](10)
    full.replace({f"c{n}": str(n) for n in range(3)})
    assert not full._tracking
    full.replace({f"c{n}": str(n) for n in range(6)})
    assert full._tracking
