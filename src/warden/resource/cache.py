"""Validation cache: a validated access token recognised in microseconds until it expires.

Entries are keyed by the exact token string, so only a byte-identical token
can hit. A hit re-checks everything that depends on time (`exp` with leeway,
and `nbf`/`iat` in case the clock moved back) and the JWK Set generation (a
refresh that removes or replaces a key drops the tokens it signed, SECURITY
F09); the validator re-checks scopes and sender binding on every call. So the
cache never accepts what a full validation would refuse. Only accepted tokens
are cached, and the size is bounded (least recently used evicted first).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from warden.protocol.status_list import StatusReference
from warden.resource.claims import Claims

__all__ = ["CachedToken", "ValidationCache"]


class CachedToken:
    """A validated token: its claims plus what a cache hit must re-check."""

    __slots__ = ("claims", "generation", "jkt", "not_before", "scope", "status", "until", "x5t")

    def __init__(self, claims: Claims, scope: frozenset[str], not_before: float, until: float,
                 generation: int, jkt: str | None, x5t: str | None, status: StatusReference | None = None) -> None:
        self.claims = claims
        self.scope = scope
        self.not_before = not_before
        self.until = until
        self.generation = generation
        self.jkt = jkt
        self.x5t = x5t
        self.status = status  # the token's Token Status List entry, checked on every use


class ValidationCache:
    """Validated tokens by exact token string, bounded, least recently used evicted first.

    An entry is served only while `not_before <= now < until` and the JWK Set
    generation is the one it was validated under; `until` is the earlier of
    `exp + leeway` and `max_ttl` seconds after validation.
    """

    def __init__(self, max_size: int = 10_000, max_ttl: float = 300.0) -> None:
        self.max_size = max_size
        self.max_ttl = max_ttl
        self._entries: OrderedDict[str, CachedToken] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ValidationCache(size={len(self._entries)}, max_size={self.max_size})"

    def lookup(self, token: str, now: float, generation: int) -> CachedToken | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry.not_before <= now < entry.until and entry.generation == generation:
            try:
                self._entries.move_to_end(token)
            except KeyError:  # evicted by another thread meanwhile; the entry is still valid
                pass
            return entry
        return None

    def put(self, token: str, entry: CachedToken) -> None:
        if self.max_size <= 0:
            return
        with self._lock:
            self._entries[token] = entry
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
