"""Token-bucket rate limiting behind one interface: in one process, across one server's workers, across nodes.

`RateLimiter.take(key, rate, burst, now)` answers 0.0 when the request may proceed (one token is
taken), otherwise the seconds after which it may be retried (the `Retry-After` value), taking
nothing. `peek` answers the same without taking. The interface is synchronous on purpose: no
decision waits on I/O. The backend that shares buckets between machines (`ClusterRateLimiter` in
`warden.services.shared_state`, with `redis_url`) decides locally and settles with Redis in the
background, behind these two methods.

What holds where:

- `InProcessRateLimiter`: the table lives in the process's own memory. Limits hold for that process
  (`warden serve --workers 1`, the ASGI application under another server, tests).
- `SharedMemoryRateLimiter`: the table lives in shared memory that the supervisor of `warden serve
  --workers N` creates before it starts any worker (`SharedBuckets.create`), with its locks. Every
  worker, a replacement worker included, attaches to the same table, so each limit holds once for
  the whole server.
- Several servers (nodes) with `redis_url`: `warden.services.shared_state.ClusterRateLimiter`, one
  limit for the cluster (each worker of each node is a participant; shared memory is not used then).

Both are the same table, so they behave alike: a fixed number of sets of `WAYS` slots, no
allocation per key. A key is hashed with BLAKE2b under a random per-table key to a 64-bit
fingerprint, which picks the set and identifies the slot: keys are never stored, and nobody outside
can aim two keys at one set. Two keys with one fingerprint would share a bucket (with a million keys,
a chance of about 3e-8), which can only make a limit stricter. When a key's set has no free slot,
the slot replaced is the one whose bucket is full again soonest. A full bucket is the same as no
entry, so nothing is lost unless every slot of the set is still refilling; then the slot closest to
full goes, and its key can gain at most the tokens it was missing. A failed-authentication lockout
(an empty bucket refilling for a minute) is the last entry of its set to go, so a spray of new keys
does not wash it out. Each set is guarded by one of a few locks (striped by set), so a take is one
short critical section: read the set, write one slot.
"""

from __future__ import annotations

import abc
import hashlib
import mmap
import multiprocessing
import os
import struct
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any, Protocol

__all__ = [
    "WAYS",
    "InProcessRateLimiter",
    "RateLimiter",
    "SharedBuckets",
    "SharedMemoryRateLimiter",
    "TokenBuckets",
    "refilled",
]

WAYS = 4  # slots per set
_SLOT = struct.Struct("<Qddd")  # fingerprint, tokens, last update, when the bucket is full again
_SET = struct.Struct("<" + "Qddd" * WAYS)
_SET_BYTES = _SET.size
_FIELDS = 4
_DEFAULT_SETS = 1 << 15  # 131,072 slots, 4 MiB per table (touched pages only)
_STRIPES = 16
_FINGERPRINT_CACHE = 1 << 16  # fingerprints remembered per process (the hash costs more than a dict lookup)


class RateLimiter(Protocol):
    def take(self, key: str, rate: float, burst: float, now: float) -> float:
        """Take one token from `key`'s bucket (refilled at `rate` per second up to `burst`); 0.0 when
        taken, else the seconds until one is available."""
        ...

    def peek(self, key: str, rate: float, burst: float, now: float) -> float:
        """Seconds until `key`'s bucket has a token (0.0 if it has one now), taking nothing."""
        ...


def refilled(tokens: float, stamp: float, rate: float, burst: float, now: float) -> float:
    """What a bucket that held `tokens` at `stamp` holds at `now`, refilled at `rate` per second up to `burst`."""
    elapsed = now - stamp
    return min(burst, tokens + elapsed * rate) if elapsed > 0 else min(burst, tokens)


class TokenBuckets(abc.ABC):
    """The token-bucket math every `RateLimiter` shares; a backend says where a bucket lives (`_spend`)."""

    def take(self, key: str, rate: float, burst: float, now: float) -> float:
        return self._spend(key, rate, burst, now, True) if rate > 0 else 0.0

    def peek(self, key: str, rate: float, burst: float, now: float) -> float:
        return self._spend(key, rate, burst, now, False) if rate > 0 else 0.0

    @abc.abstractmethod
    def _spend(self, key: str, rate: float, burst: float, now: float, take: bool) -> float:
        """Find `key`'s bucket and pass its tokens to `_decide`; `rate` is positive."""

    @staticmethod
    def _decide(tokens: float, rate: float) -> float:
        """0.0 if a bucket holding `tokens` may give one, else the seconds until it can (a refusal takes nothing)."""
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate


class _BucketTable(TokenBuckets):
    """The token-bucket table over a buffer; where the buffer and locks live is the caller's choice."""

    def __init__(self, buffer: Any, locks: Sequence[AbstractContextManager[Any]], hash_key: bytes, sets: int) -> None:
        if sets <= 0 or sets & (sets - 1) or len(locks) & (len(locks) - 1):
            raise ValueError("sets and locks must be powers of two")
        self._buffer = buffer
        self._locks = tuple(locks)
        self._stripe_mask = len(locks) - 1
        self._set_mask = sets - 1
        self._hash_key = hash_key
        self._fingerprints: dict[str, int] = {}

    def _fingerprint(self, key: str) -> int:
        fingerprint = self._fingerprints.get(key)
        if fingerprint is None:
            digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8, key=self._hash_key).digest()
            fingerprint = int.from_bytes(digest, "little") | 1  # 0 marks a slot never used
            if len(self._fingerprints) >= _FINGERPRINT_CACHE:
                self._fingerprints.clear()
            self._fingerprints[key] = fingerprint
        return fingerprint

    def _spend(self, key: str, rate: float, burst: float, now: float, take: bool) -> float:
        fingerprint = self._fingerprints.get(key) or self._fingerprint(key)
        index = fingerprint & self._set_mask
        offset = index * _SET_BYTES
        with self._locks[index & self._stripe_mask]:
            slots = _SET.unpack_from(self._buffer, offset)
            fingerprints = slots[::_FIELDS]  # slicing and searching in C: cheaper than a loop of four
            if fingerprint in fingerprints:
                way = fingerprints.index(fingerprint) * _FIELDS
                # still refilling; otherwise it is as good as new
                tokens = refilled(slots[way + 1], slots[way + 2], rate, burst, now) if slots[way + 3] > now else burst
            else:  # take over the slot that is full again soonest (see the module docstring)
                full_at = slots[3::_FIELDS]
                way = full_at.index(min(full_at)) * _FIELDS
                tokens = burst
            wait = self._decide(tokens, rate)
            if wait or not take:
                return wait
            tokens -= 1.0
            _SLOT.pack_into(self._buffer, offset + way * 8, fingerprint, tokens, now, now + (burst - tokens) / rate)
            return 0.0


class InProcessRateLimiter(_BucketTable):
    """Token buckets in this process's memory: limits hold for this process only."""

    def __init__(self, sets: int = _DEFAULT_SETS) -> None:
        # Anonymous memory: pages are zero and cost nothing until a key lands on them.
        super().__init__(mmap.mmap(-1, sets * _SET_BYTES), [threading.Lock()], os.urandom(16), sets)


@dataclass(frozen=True)
class SharedBuckets:
    """A bucket table in shared memory with its locks, made by the supervisor before it starts workers.

    Pass it to each worker process when starting it (it pickles only while a process is being
    spawned); each builds a `SharedMemoryRateLimiter` on it.
    """

    memory: Any  # multiprocessing.sharedctypes RawArray of c_char
    locks: tuple[Any, ...]  # multiprocessing Locks, one per stripe
    hash_key: bytes
    sets: int

    @classmethod
    def create(cls, context: BaseContext | None = None, sets: int = _DEFAULT_SETS) -> SharedBuckets:
        import ctypes

        ctx = context or multiprocessing.get_context("spawn")
        memory = ctx.RawArray(ctypes.c_char, sets * _SET_BYTES)  # zero-filled
        return cls(memory, tuple(ctx.Lock() for _ in range(_STRIPES)), os.urandom(16), sets)


class SharedMemoryRateLimiter(_BucketTable):
    """Token buckets shared by every process attached to one `SharedBuckets` table."""

    def __init__(self, shared: SharedBuckets) -> None:
        super().__init__(memoryview(shared.memory).cast("B"), shared.locks, shared.hash_key, shared.sets)
