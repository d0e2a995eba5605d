"""Token Status Lists on the server: an entry for every token, and the lists resource servers fetch.

Allocation. Each process takes entries for a client's tokens from a block of consecutive entries
it reserved for that client in the store (`Store.reserve_status_block`, atomic across processes
and nodes). A block takes new tokens for `block_window` seconds or until it is full; its
`reusable_at` (reservation + window + the longest token lifetime + leeway) is fixed when it is
reserved, and a token whose expiry would pass it gets a new block. Blocks start at 16 entries and
double, up to `max_block`, for clients that fill them, so a busy client costs one store write per
few thousand tokens and an idle one wastes at most a handful of entries. Blocks are per client so
that revoking a client marks its blocks whole.

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


class StatusAllocator(_StatusLists):
    """Gives each token an entry (the token endpoint's `assign_status` step)."""

    def __init__(self, settings: StatusListSettings, state: ServingState, issuer: str, *,
                 store_timeout: float = 2.0) -> None:
        super().__init__(settings, state, issuer)
        self._current: dict[str, _Current] = {}
        self._reserving: dict[str, asyncio.Future[None]] = {}
        self._warned_at = -1e9
        self._store_timeout = store_timeout
        self._unavailable_until = -1e9  # monotonic; while in the future, no reservation is attempted

    def assign_status(self, call: Call) -> Awaitable[None] | None:
        """Put the token's (list, index) on the call; waits on the store only when a block runs out."""
        client = call.authenticated.client
        current = self._current.get(client.client_id)
        if current is not None and self._usable(current, call):
            call.status = self._entry(current)
            return None
        return self._assign_or_degrade(call, current)

    async def _assign_or_degrade(self, call: Call, current: _Current | None) -> None:
        """A new block needs the store. While it is unreachable, tokens go out without a status entry
        (revocable at introspection, not at resource servers) rather than not at all: the token path
        keeps serving from the cached registry through a database outage, as it always has."""
        try:
            await self._reserve_then_assign(call, current)
        except TemporarilyUnavailable:
            call.status = None
            now = time.monotonic()
            if now - self._warned_at >= 60.0:
                self._warned_at = now
                log.warning("status list entries unavailable (store unreachable): issuing tokens without a "
                            "status entry until it is back")

    def _entry(self, current: _Current) -> StatusEntry:
        list_id, idx = current.block.list_id, current.next
        current.next += 1
        return StatusEntry(list_id, idx, status_list_uri(self._issuer, list_id))

    def _usable(self, current: _Current, call: Call) -> bool:
        block = current.block
        revoked_before = call.authenticated.client.revoked_before
        return (current.next < block.start + block.size and call.now < current.open_until
                and call.now + self._state.registry.max_token_ttl + _LEEWAY <= block.reusable_at
                and (revoked_before is None or revoked_before < block.reserved_at))

    async def _reserve_then_assign(self, call: Call, previous: _Current | None) -> None:
        client_id = call.authenticated.client.client_id
        pending = self._reserving.get(client_id)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._reserving[client_id] = pending
            try:
                await self._reserve(call, previous)
                pending.set_result(None)
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved: waiters re-raise it, nobody else needs to
                raise
            finally:
                del self._reserving[client_id]
        else:
            await asyncio.shield(pending)
        current = self._current.get(client_id)
        if current is None or not self._usable(current, call):  # filled up by the others that waited
            await self._reserve_then_assign(call, current)
            return
        call.status = self._entry(current)

    async def _reserve(self, call: Call, previous: _Current | None) -> None:
        s = self._settings
        size = _FIRST_BLOCK
        if previous is not None:
            filled = previous.next >= previous.block.start + previous.block.size
            size = min(s.max_block, previous.block.size * 2 if filled else max(_FIRST_BLOCK, previous.block.size // 2))
        now = call.now
        reusable_at = now + s.block_window + self._state.registry.max_token_ttl + 2 * _LEEWAY
        store = self._state.current_store()
        if time.monotonic() < self._unavailable_until:  # it failed a moment ago: do not queue on it again
            raise TemporarilyUnavailable("token status list unavailable", reason="status_list_unavailable",
                                         retry_after=1)
        try:  # a slow or partitioned database holds the request at most `store_timeout` seconds
            block = await asyncio.wait_for(
                asyncio.to_thread(store.reserve_status_block, call.authenticated.client.client_id,
                                  size, now, reusable_at, s.size), self._store_timeout)
        except Exception as exc:  # StorageError or TimeoutError; a token must not go out without its entry
            self._unavailable_until = time.monotonic() + _RETRY_PAUSE
            raise TemporarilyUnavailable("token status list unavailable", reason="status_list_unavailable",
                                         retry_after=1) from exc
        self._current[block.client_id] = _Current(block, block.start, now + s.block_window)

    def forget_idle(self, now: float) -> None:
        """Drop the blocks whose window has passed (background maintenance), so memory follows
        the clients that are active, not every client that ever asked."""
        for client_id in [c for c, cur in self._current.items() if now >= cur.open_until]:
            self._current.pop(client_id, None)


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
