"""Token Status Lists on the server: an entry for every token, and the lists resource servers fetch.

Allocation. Each process takes entries for a client's tokens from a block of consecutive entries
it reserved for that client in the store (`Store.reserve_status_blocks`, atomic across processes
and nodes). A block takes new tokens for `block_window` seconds or until it is full; its
`reusable_at` (reservation + window + the longest token lifetime + leeway) is fixed when it is
reserved, and a token whose expiry would pass it gets a new block. Blocks start at 16 entries and
double, up to `max_block`, for clients that fill them, so an idle client wastes at most a handful
of entries. Blocks are per client so that revoking a client marks its blocks whole.

Reservations are few store writes however many clients call: one writer task per process sends
every reservation queued (up to `_BATCH`) in one transaction, then what queued while it ran in the
next (one reservation in flight per client, its callers wait on it together); and once a block is
three quarters used the client's next one is reserved in the background (gathered with the others
for `_GATHER` seconds first), so only a client's first token (or its first after a pause) waits
on the store. A block's `reserved_at` is the earliest
request time of its batch in whole seconds (as `iat`), and a token takes entries only from a block reserved no later than its
own `iat` (a request that started before a block was reserved does not use it), so a revocation
marks a block whenever it could cover one of its tokens.

A reservation waits on the store at most `store_request_timeout` seconds; past that, or on a store
error, the token goes out without an entry and no reservation is tried for `_RETRY_PAUSE` seconds,
so a slow or partitioned database neither holds token requests nor piles up blocked threads.

Publication. A list is rendered from the store (its revoked clients' live blocks and single
revoked tokens, `Store.load_status_marks`), signed with the active key, and kept for
`publish_interval` seconds; one render at a time per list. A revocation therefore shows on every
node within the publish interval plus a registry poll.

Revoking a client marks every block reserved for it up to the revocation; a process that has not
yet seen the revocation (one registry poll) may still give out entries of such a block, so tokens
issued in that instant read as revoked at resource servers, which errs on the safe side.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from warden.core.algorithms import DEFAULT_ALG
from warden.core.revocation import StatusBlock, StatusEntry
from warden.jose import encode_header
from warden.protocol.errors import TemporarilyUnavailable
from warden.protocol.status_list import INVALID, STATUSLIST_TYP, StatusList, status_list_claims
from warden.services.call import Call, ServingState
from warden.settings import StatusListSettings

__all__ = ["StatusAllocator", "StatusListPublisher", "status_list_uri"]

log = logging.getLogger("warden.server")

_FIRST_BLOCK = 16
_BATCH = 500  # reservations sent in one store write at most
_GATHER = 0.1  # a reservation made ahead waits this long for others to share its store write
_RETRY_PAUSE = 5.0  # after a reservation failed or timed out, tokens go without an entry this long before a retry
_LEEWAY = 60.0  # resource servers accept tokens this long past exp at most (validator leeway <= 300 is theirs)


def status_list_uri(issuer: str, list_id: int) -> str:
    return f"{issuer}/oauth2/status/{list_id}"


@dataclass(slots=True)
class _Current:
    block: StatusBlock
    next: int
    open_until: float  # reserved_at + block_window


class _StatusLists:
    """What both sides of the status lists work from: the settings, the serving state, the issuer."""

    def __init__(self, settings: StatusListSettings, state: ServingState, issuer: str) -> None:
        self._settings = settings
        self._state = state
        self._issuer = issuer


@dataclass(slots=True)
class _Want:
    """A reservation waiting for the next store write: the block's size, the earliest `now` of the
    calls asking (the block's `reserved_at` must not be later than any token it holds), and the
    future its callers wait on."""

    size: int
    now: float
    done: asyncio.Future[None]
    ahead: bool  # reserved before the client needs it: no token waits on it yet


class StatusAllocator(_StatusLists):
    """Gives each token an entry (the token endpoint's `assign_status` step)."""

    def __init__(self, settings: StatusListSettings, state: ServingState, issuer: str, *,
                 store_timeout: float = 2.0) -> None:
        super().__init__(settings, state, issuer)
        self._current: dict[str, _Current] = {}
        self._ahead: dict[str, _Current] = {}  # the block each client goes on to when its current one ends
        self._reserving: dict[str, asyncio.Future[None]] = {}  # one reservation in flight per client
        self._queue: dict[str, _Want] = {}  # waiting for the next store write, in arrival order
        self._writer: asyncio.Task[None] | None = None  # the one task writing batches, while there are any
        self._urgent = asyncio.Event()  # a token waits on a queued reservation: write now
        self._warned_at = -1e9
        self._store_timeout = store_timeout
        self._unavailable_until = -1e9  # monotonic; while in the future, no reservation is attempted
        self.store_writes = 0  # reservation transactions sent to the store (tests and benchmarks read it)

    def assign_status(self, call: Call) -> Awaitable[None] | None:
        """Put the token's (list, index) on the call; waits on the store only when the client has no
        usable block, current or reserved ahead (its first token, or one after a long pause)."""
        current = self._take(call)
        if current is not None:
            call.status = self._entry(current)
            self._maybe_reserve_ahead(call, current)
            return None
        return self._assign_or_degrade(call)

    async def _assign_or_degrade(self, call: Call) -> None:
        """A new block needs the store. While it is unreachable, tokens go out without a status entry
        (revocable at introspection, not at resource servers) rather than not at all: the token path
        keeps serving from the cached registry through a database outage, as it always has."""
        try:
            await self._reserve_then_assign(call)
        except TemporarilyUnavailable:
            call.status = None
            now = time.monotonic()
            if now - self._warned_at >= 60.0:
                self._warned_at = now
                log.warning("status list entries unavailable (store unreachable): issuing tokens without a "
                            "status entry until it is back")

    def _take(self, call: Call) -> _Current | None:
        """The client's block this token can use: the current one, else the one reserved ahead."""
        client_id = call.authenticated.client.client_id
        current = self._current.get(client_id)
        if current is not None and self._usable(current, call):
            return current
        ahead = self._ahead.get(client_id)
        if ahead is not None and self._usable(ahead, call):
            del self._ahead[client_id]
            self._current[client_id] = ahead
            return ahead
        return None

    def _entry(self, current: _Current) -> StatusEntry:
        list_id, idx = current.block.list_id, current.next
        current.next += 1
        return StatusEntry(list_id, idx, status_list_uri(self._issuer, list_id))

    def _usable(self, current: _Current, call: Call) -> bool:
        block = current.block
        revoked_before = call.authenticated.client.revoked_before
        return (current.next < block.start + block.size and block.reserved_at <= call.now < current.open_until
                and call.now + self._state.registry.max_token_ttl + _LEEWAY <= block.reusable_at
                and (revoked_before is None or revoked_before < block.reserved_at))

    def _maybe_reserve_ahead(self, call: Call, current: _Current) -> None:
        """Once a block is three quarters used, the client's next one is reserved in the background
        (with everyone else's, in one store write), so a busy client's tokens do not wait for it."""
        block = current.block
        if (current.next - block.start) * 4 < block.size * 3:
            return
        client_id = call.authenticated.client.client_id
        if (client_id in self._ahead or client_id in self._reserving
                or time.monotonic() < self._unavailable_until):
            return
        self._request(client_id, self._next_size(current), call.now, ahead=True)

    def _next_size(self, previous: _Current | None) -> int:
        """16 entries at first; double for a client that (nearly) fills its blocks, halve for one that does not."""
        if previous is None:
            return _FIRST_BLOCK
        size = previous.block.size
        nearly_full = (previous.next - previous.block.start) * 4 >= size * 3
        return min(self._settings.max_block, size * 2 if nearly_full else max(_FIRST_BLOCK, size // 2))

    async def _reserve_then_assign(self, call: Call) -> None:
        client_id = call.authenticated.client.client_id
        for _ in range(3):  # a block another call took first, or one reserved before a revocation seen since
            if time.monotonic() < self._unavailable_until:  # it failed a moment ago: do not queue on it again
                break
            pending = self._reserving.get(client_id)
            if pending is None:
                pending = self._request(client_id, self._next_size(self._current.get(client_id)), call.now,
                                        ahead=False)
            else:
                want = self._queue.get(client_id)
                if want is not None and want.ahead:  # reserved ahead, still queued, and now a token needs it
                    want.ahead = False
                    self._urgent.set()
            await asyncio.shield(pending)
            current = self._take(call)
            if current is not None:
                call.status = self._entry(current)
                return
        raise TemporarilyUnavailable("token status list unavailable", reason="status_list_unavailable",
                                     retry_after=1)

    def _request(self, client_id: str, size: int, now: float, *, ahead: bool) -> asyncio.Future[None]:
        """Queue a reservation for `client_id` (single flight: callers of one client share it); the
        writer task sends everything queued in one store write, then what queued meanwhile in the next.
        Reservations made ahead wait up to `_GATHER` seconds for others to share their write."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reserving[client_id] = done
        self._queue[client_id] = _Want(size, now, done, ahead)
        if not ahead:
            self._urgent.set()
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write_batches())
        return done

    async def _write_batches(self) -> None:
        try:
            while self._queue:
                if not self._urgent.is_set() and len(self._queue) < _BATCH:
                    try:
                        await asyncio.wait_for(self._urgent.wait(), _GATHER)
                    except TimeoutError:
                        pass
                self._urgent.clear()
                batch = dict(list(self._queue.items())[:_BATCH])
                for client_id in batch:
                    del self._queue[client_id]
                await self._reserve(batch)
        finally:
            self._writer = None

    async def _reserve(self, batch: dict[str, _Want]) -> None:
        s = self._settings
        # whole seconds, as `iat`: a token revoked by its client's revocation (iat <= revoked_before) lies
        # in a block reserved no later than the revocation, so the revocation marks it
        now = float(math.floor(min(w.now for w in batch.values())))
        reusable_at = now + s.block_window + self._state.registry.max_token_ttl + 2 * _LEEWAY
        failure: Exception | None = None
        blocks: list[StatusBlock] = []
        if time.monotonic() < self._unavailable_until:
            failure = TemporarilyUnavailable("token status list unavailable", reason="status_list_unavailable",
                                             retry_after=1)
        else:
            store = self._state.current_store()
            wants = [(client_id, w.size) for client_id, w in batch.items()]
            self.store_writes += 1
            try:  # a slow or partitioned database holds the requests at most `store_timeout` seconds
                blocks = await asyncio.wait_for(
                    asyncio.to_thread(store.reserve_status_blocks, wants, now, reusable_at, s.size),
                    self._store_timeout)
            except Exception as exc:  # StorageError or TimeoutError
                self._unavailable_until = time.monotonic() + _RETRY_PAUSE
                failure = TemporarilyUnavailable("token status list unavailable", reason="status_list_unavailable",
                                                 retry_after=1)
                failure.__cause__ = exc
        for block in blocks:
            self._ahead[block.client_id] = _Current(block, block.start, now + s.block_window)
        for client_id, want in batch.items():
            if self._reserving.get(client_id) is want.done:
                del self._reserving[client_id]
            if failure is None:
                want.done.set_result(None)
            else:
                want.done.set_exception(failure)
                want.done.exception()  # retrieved: waiters re-raise it; a reservation ahead has none

    def forget_idle(self, now: float) -> None:
        """Drop the blocks whose window has passed (background maintenance), so memory follows
        the clients that are active, not every client that ever asked."""
        for blocks in (self._current, self._ahead):
            for client_id in [c for c, cur in blocks.items() if now >= cur.open_until]:
                blocks.pop(client_id, None)


@dataclass(frozen=True, slots=True)
class _Rendered:
    at: float
    token: str | None  # None: no such list


class StatusListPublisher(_StatusLists):
    """Serves `GET /oauth2/status/{id}`: the signed Status List Token, re-rendered every publish interval."""

    def __init__(self, settings: StatusListSettings, state: ServingState, issuer: str) -> None:
        super().__init__(settings, state, issuer)
        self._rendered: dict[int, _Rendered] = {}
        self._rendering: dict[int, asyncio.Task[_Rendered]] = {}

    async def status_list_token(self, list_id: int, now: float) -> str | None:
        """The current Status List Token of `list_id`, or None when the server has no such list."""
        rendered = self._rendered.get(list_id)
        if rendered is not None and now - rendered.at < self._settings.publish_interval:
            return rendered.token
        task = self._rendering.get(list_id)
        if task is None:
            task = asyncio.ensure_future(asyncio.to_thread(self._render, list_id, now))
            self._rendering[list_id] = task
            task.add_done_callback(lambda _: self._rendering.pop(list_id, None))
        try:
            rendered = await asyncio.shield(task)
        except Exception as exc:
            raise TemporarilyUnavailable("token status list unavailable", reason="status_list_unavailable",
                                         retry_after=1) from exc
        self._rendered[list_id] = rendered
        if len(self._rendered) > 4096:  # unknown ids asked for at random must not grow this without bound
            self._rendered = {k: v for k, v in self._rendered.items() if v.token is not None}
        return rendered.token

    async def live_lists(self, now: float) -> list[int]:
        try:
            return await asyncio.to_thread(self._state.current_store().load_status_lists, now)
        except Exception as exc:
            raise TemporarilyUnavailable("token status list unavailable", reason="status_list_unavailable",
                                         retry_after=1) from exc

    def _render(self, list_id: int, now: float) -> _Rendered:
        marks = self._state.current_store().load_status_marks(list_id, now)
        if marks is None:
            return _Rendered(now, None)
        size = self._settings.size
        statuses = StatusList(size)
        for start, count in marks:
            if start < size:
                statuses.set_range(start, min(count, size - start), INVALID)
        registry = self._state.registry
        signer = registry.signers.get(DEFAULT_ALG) or next(iter(registry.signers.values()), None)
        if signer is None:
            raise TemporarilyUnavailable("no active signing key", reason="no_signing_key")
        iat, ttl = int(now), self._settings.ttl
        claims = status_list_claims(status_list_uri(self._issuer, list_id), iat, iat + 10 * ttl, ttl, statuses)
        header = encode_header({"alg": signer.alg, "kid": signer.kid, "typ": STATUSLIST_TYP})
        payload = json.dumps(claims, separators=(",", ":")).encode("ascii")
        return _Rendered(now, signer.sign_jws(header, payload))
