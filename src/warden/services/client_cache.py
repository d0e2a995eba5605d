"""The bounded parts of the registry: the hot clients (LRU) and the ids known not to exist (TTL).

`ClientCache` holds at most `capacity` client entries and evicts the least recently
used; once it is half full a hit moves the entry to the back (one C-level call, so the
token path stays a dictionary read). Below that nothing can be evicted soon, so a
registry that fits (the common case) pays nothing for recency it will never use. `AbsentClients` remembers client ids the store did not have, for a
short time and in bounded number, so repeating an unknown id costs no query; the
registry forgets an id here as soon as the change log names it (a client created
meanwhile is found on the next request).

Both are written by the registry under its lock and read without it: each operation is
a single call on a built-in dict, atomic under the GIL.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["AbsentClients", "ClientCache"]

V = TypeVar("V")


class ClientCache(Generic[V]):
    """At most `capacity` entries by client id; the least recently used goes first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._entries: OrderedDict[str, V] = OrderedDict()
        self.evictions = 0
        self._tracking = False  # recency is kept once half full (see the module docstring)

    def get(self, client_id: str) -> V | None:
        entry = self._entries.get(client_id)
        if entry is not None and self._tracking:
            try:
                self._entries.move_to_end(client_id)
            except KeyError:  # evicted by another thread between the two calls
                pass
        return entry

    def peek(self, client_id: str) -> V | None:
        """The entry without counting it as a use."""
        return self._entries.get(client_id)

    def put(self, client_id: str, entry: V) -> int:
        """Insert or replace; return how many entries were evicted to make room."""
        self._entries[client_id] = entry
        self._entries.move_to_end(client_id)
        self._tracking = self._tracking or 2 * len(self._entries) >= self.capacity
        return self._evict_overflow()

    def pop(self, client_id: str) -> V | None:
        return self._entries.pop(client_id, None)

    def replace(self, entries: dict[str, V]) -> int:
        """Start over with `entries` (a full load); return how many did not fit."""
        self._entries = OrderedDict(entries)
        self._tracking = 2 * len(self._entries) >= self.capacity
        return self._evict_overflow()

    def _evict_overflow(self) -> int:
        """Drop the least recently used entries beyond `capacity`; return how many."""
        evicted = 0
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            evicted += 1
        self.evictions += evicted
        return evicted

    def values(self) -> list[V]:
        """A snapshot, safe to walk while other threads use the cache."""
        return list(self._entries.values())

    def __getitem__(self, client_id: str) -> V:
        entry = self.get(client_id)
        if entry is None:
            raise KeyError(client_id)
        return entry

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)


class AbsentClients:
    """Client ids the store did not have, each remembered for `ttl` seconds; at most `capacity`."""

    def __init__(self, capacity: int, ttl: float) -> None:
        self.capacity = max(0, capacity)
        self.ttl = ttl
        self._until: dict[str, float] = {}  # insertion order is expiry order: every entry lives `ttl`

    def contains(self, client_id: str, now: float) -> bool:
        until = self._until.get(client_id)
        return until is not None and until > now

    def add(self, client_id: str, now: float) -> None:
        if self.capacity == 0 or self.ttl <= 0:
            return
        self._until.pop(client_id, None)
        while self._until and len(self._until) >= self.capacity:
            oldest = next(iter(self._until))  # the first to expire, expired or not: the bound holds
            self._until.pop(oldest, None)
        self._until[client_id] = now + self.ttl

    def discard(self, client_id: str) -> None:
        self._until.pop(client_id, None)

    def clear(self) -> None:
        self._until.clear()

    def __len__(self) -> int:
        return len(self._until)
