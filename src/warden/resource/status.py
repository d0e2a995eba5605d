"""Token Status List checks for resource servers (draft-ietf-oauth-status-list §8, §13).

A token that names an entry (`status.status_list`) is accepted only while its entry reads VALID
in the list published at the entry's `uri`. Lists are fetched once and kept for their `ttl`
(bounded by `min_ttl`/`max_ttl`), refreshed in the background once `refresh_ahead` of that time has
passed so busy servers never wait on a fetch, one fetch per list at a time (single flight). A list
is accepted only as a Status List Token of the validator's own issuer: `typ` `statuslist+jwt`,
signed by a key in the issuer's JWK Set, `sub` equal to the URI it was fetched from, not expired;
the URI must share the issuer's origin.

When a list cannot be refreshed the last good one keeps answering for up to `max_stale` seconds
past its freshness (stale-if-error); after that, or when no list was ever obtained, `on_failure`
decides: "closed" (the default) refuses with `TemporarilyUnavailable` (503, never an auth error),
"open" accepts the token and logs a warning.

The cached path costs a dictionary lookup, a time comparison and a bit read (bench/validate.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx

from warden.core.clock import Clock, SystemClock
from warden.jose import JoseError, parse_compact
from warden.protocol.errors import InvalidToken, TemporarilyUnavailable
from warden.protocol.status_list import MEDIA_TYPE, STATUSLIST_TYP, VALID, StatusList, StatusReference
from warden.resource._fetch import FetchError, Get, fetch_sync, lifetime
from warden.resource.jwks import JWKSCache

__all__ = ["StatusListCache", "StatusPolicy"]

logger = logging.getLogger("warden.resource")


@dataclass(frozen=True)
class StatusPolicy:
    """How status lists are cached and what happens when they cannot be had."""

    min_ttl: float = 5.0  # a list is kept at least this long, whatever its ttl says
    max_ttl: float = 300.0  # ... and at most this long before it is fetched again
    default_ttl: float = 60.0  # when the list token carries no ttl
    refresh_ahead: float = 0.75  # fraction of the lifetime after which a background refresh starts
    max_stale: float = 300.0  # how long past its lifetime a list answers while refreshes fail
    on_failure: Literal["closed", "open"] = "closed"
    cooldown: float = 5.0  # at most one failed fetch per list per this many seconds
    timeout: float = 5.0  # seconds for each fetch
    max_token_bytes: int = 4 * 1024 * 1024  # largest Status List Token accepted
    max_list_bytes: int = 16 * 1024 * 1024  # largest decompressed list accepted (134 million 1-bit entries)
    max_lists: int = 64  # lists kept at once (least recently used dropped first)


class _Entry:
    __slots__ = ("fresh_until", "lst", "refresh_at", "usable_until")

    def __init__(self, lst: StatusList, fresh_until: float, refresh_at: float, usable_until: float) -> None:
        self.lst = lst
        self.fresh_until = fresh_until
        self.refresh_at = refresh_at
        self.usable_until = usable_until


class StatusListCache:
    """The status lists of one issuer, shared by every validation (and thread) of a validator."""

    def __init__(self, jwks: JWKSCache, *, policy: StatusPolicy | None = None,
                 http_client: httpx.Client | None = None, clock: Clock | None = None) -> None:
        self.issuer = jwks.issuer
        self.policy = policy or StatusPolicy()
        self._jwks = jwks
        self._http_client = http_client
        self._clock: Clock = clock or SystemClock()
        parts = urlsplit(jwks.issuer)
        self._origin = (parts.scheme, parts.netloc)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._inflight: dict[str, threading.Event] = {}
        self._failed_at: dict[str, float] = {}
        self.fetches = 0
        """Fetch attempts so far (for metrics and tests)."""

    # -- checks -------------------------------------------------------------------------

    def check(self, ref: StatusReference, now: float) -> None:
        """Refuse a token whose entry is not VALID; may fetch the list (blocking)."""
        if not self._answered(ref, now):
            self._decide(ref, now, self._current(ref.uri, now, wait=True))

    async def acheck(self, ref: StatusReference, now: float) -> None:
        """`check` for async code: a fetch it must wait for runs in a thread, never on the loop."""
        if not self._answered(ref, now):
            self._decide(ref, now, await asyncio.to_thread(self._current, ref.uri, now, True))

    def _answered(self, ref: StatusReference, now: float) -> bool:
        """Answer from a list not yet due for refresh (the cached path); False when one is needed."""
        entry = self._entries.get(ref.uri)
        if entry is None or now >= entry.refresh_at:
            return False
        if entry.lst[ref.idx] if ref.idx < entry.lst.size else True:
            self._refuse(ref, entry)
        return True

    def _decide(self, ref: StatusReference, now: float, entry: _Entry | None) -> None:
        if entry is None or now >= entry.usable_until:
            if self.policy.on_failure == "open":
                logger.warning("status list %s unavailable; accepting the token (on_failure=open)", ref.uri)
                return
            raise TemporarilyUnavailable("token status unavailable", reason="status_unavailable",
                                         retry_after=max(1, math.ceil(self.policy.cooldown)))
        if ref.idx >= entry.lst.size or entry.lst[ref.idx] != VALID:
            self._refuse(ref, entry)

    @staticmethod
    def _refuse(ref: StatusReference, entry: _Entry) -> None:
        if ref.idx >= entry.lst.size:
            raise InvalidToken("token status entry out of range", reason="status_invalid")
        raise InvalidToken("token revoked", reason="revoked")

    # -- fetching -----------------------------------------------------------------------

    def _current(self, uri: str, now: float, wait: bool) -> _Entry | None:
        """The entry for `uri` after any fetch it needs: in the foreground once it is no longer
        fresh (or was never had), in the background while it is fresh but due for a refresh."""
        if not self._same_origin(uri):
            raise InvalidToken("token status list is not the issuer's", reason="status_uri")
        entry = self._entries.get(uri)
        due_foreground = entry is None or now >= entry.fresh_until
        if not due_foreground:
            self._start(uri, background=True)
            return entry
        if now - self._failed_at.get(uri, -math.inf) >= self.policy.cooldown:
            event = self._start(uri, background=False)
            if event is not None:
                event.wait(3 * self.policy.timeout + 1.0)
        return self._entries.get(uri)

    def _start(self, uri: str, *, background: bool) -> threading.Event | None:
        """Start a fetch of `uri` unless one is in flight (then return its event to wait on)."""
        with self._lock:
            event = self._inflight.get(uri)
            if event is not None:
                return event
            event = self._inflight[uri] = threading.Event()
        if background:
            threading.Thread(target=self._fetch, args=(uri, event), daemon=True,
                             name="warden-status-list").start()
        else:
            self._fetch(uri, event)
        return event

    def _fetch(self, uri: str, event: threading.Event) -> None:
        self.fetches += 1
        try:
            self._install(uri, self._get(uri))
            self._failed_at.pop(uri, None)
        except (FetchError, ValueError, JoseError, InvalidToken, TemporarilyUnavailable) as exc:
            self._failed_at[uri] = self._clock.now()
            logger.warning("status list %s could not be refreshed: %s", uri, exc)
        except Exception:  # a bug must not leave waiters hanging
            self._failed_at[uri] = self._clock.now()
            logger.exception("status list %s: unexpected failure", uri)
        finally:
            with self._lock:
                self._inflight.pop(uri, None)
            event.set()

    def _get(self, uri: str) -> tuple[bytes, httpx.Headers]:
        response = fetch_sync(self._http_client, Get(uri, self.policy.max_token_bytes, MEDIA_TYPE),
                              self.policy.timeout)
        if response.status != 200:
            raise FetchError(f"HTTP {response.status}")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != MEDIA_TYPE:
            raise FetchError("not a status list token")
        return response.body, response.headers

    def _install(self, uri: str, fetched: tuple[bytes, httpx.Headers]) -> None:
        body, headers = fetched
        try:
            parsed = parse_compact(body.decode("ascii"))
        except UnicodeDecodeError:
            raise FetchError("malformed status list token") from None
        typ = parsed.header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in (STATUSLIST_TYP, f"application/{STATUSLIST_TYP}"):
            raise FetchError("not a status list token")
        kid = parsed.header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise FetchError("malformed status list token")
        alg = parsed.alg
        if alg not in self._jwks.algorithms:
            raise FetchError("status list signed with an algorithm not accepted")
        parsed.verify(self._jwks.get_key(kid, alg), (alg,))
        claims = parsed.claims()
        now = self._clock.now()
        if claims.get("sub") != uri:
            raise FetchError("status list subject does not match its uri")
        exp, ttl = claims.get("exp"), claims.get("ttl")
        if exp is not None and (isinstance(exp, bool) or not isinstance(exp, (int, float)) or not math.isfinite(exp)):
            raise FetchError("status list exp is malformed")
        if exp is not None and exp <= now:
            raise FetchError("status list token has expired")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
            raise FetchError("status list ttl is malformed")
        lst = StatusList.decode(claims.get("status_list"), max_bytes=self.policy.max_list_bytes)
        p = self.policy
        life = min(max(float(ttl) if ttl is not None else lifetime(headers, default=p.default_ttl, low=p.min_ttl,
                                                                        high=p.max_ttl), p.min_ttl), p.max_ttl)
        usable = now + life + p.max_stale
        if exp is not None:
            usable = min(usable, float(exp))
        entry = _Entry(lst, now + life, now + life * p.refresh_ahead, usable)
        with self._lock:
            self._entries[uri] = entry
            self._entries.move_to_end(uri)
            while len(self._entries) > p.max_lists:
                self._entries.popitem(last=False)

    def _same_origin(self, uri: str) -> bool:
        parts = urlsplit(uri)
        return (parts.scheme, parts.netloc) == self._origin and not parts.username and not parts.password
