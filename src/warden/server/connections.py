"""What the connections of one listening HTTP/1.1 server share (`h1.py`): the application, the
limits, the open connections, the Date header, and the writes of one pass of the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from warden._http11 import DateHeader
from warden.server.http import Request, Response

log = logging.getLogger("warden.server")

_FILES_RESERVED = 64  # descriptors kept for the store, the audit file, logs and the listener itself

__all__ = ["Connection", "ConnectionSet", "Limits", "Responder", "fit_to_file_limit"]


class Responder(Protocol):
    """What the server needs from the application (`WardenApp` is one)."""

    max_body_bytes: int

    def source_of(self, peer: str | None, headers: dict[bytes, bytes]) -> str: ...

    async def respond(self, request: Request) -> Response: ...

    def body_too_large(self) -> Response: ...

    async def startup(self) -> None: ...

    async def shutdown(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 16384
    max_header_bytes: int = 16384  # request target plus every header name and value
    max_headers: int = 100
    max_pipelined: int = 16  # parsed requests waiting behind the one being answered
    keep_alive_timeout: float = 5.0  # idle time before a keep-alive connection is closed
    request_timeout: float = 10.0  # from a request's first byte to its last
    write_timeout: float = 15.0  # answers not drained for this long: the connection is reset
    max_connections: int = 4096  # open connections of one listener; more get 503 and are closed


class Connection(Protocol):
    """What the set needs of a connection (`h1.H1Connection`)."""

    def check_timeouts(self, now: float) -> None: ...

    def close_if_idle(self) -> None: ...

    def abort(self) -> None: ...


class ConnectionSet:
    """State shared by the connections of one listening server: app, limits, the Date header, the
    open connections, and whether the server is draining."""

    def __init__(self, app: Responder, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        self.connections: set[Connection] = set()
        self.draining = False
        self.date_header = DateHeader()  # the `date:` line of every answer
        self._outbox: list[tuple[asyncio.Transport, bytes, bool]] = []

    def post(self, transport: asyncio.Transport, data: bytes, close: bool) -> None:
        """Queue `data` for `transport` (then close it, if `close`); all that is queued during one pass of
        the event loop is written together right after it.

        Answers computed in the same pass go out back to back instead of one per request. On one
        busy core that lets a waiting client be woken once per batch rather than once per answer,
        which measured as 10% less CPU per token request; a request waits at most for the answers
        computed alongside it, which it was queued behind anyway.
        """
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append((transport, data, close))

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        for transport, data, close in outbox:
            if not transport.is_closing():
                if data:
                    transport.write(data)
                if close:
                    transport.close()  # sends what is buffered, then closes


    def sweep(self, now: float) -> None:
        """Close idle and too-slow connections (called about once a second)."""
        for connection in list(self.connections):
            connection.check_timeouts(now)

    def drain(self) -> None:
        """Answer what has arrived, then close: idle connections close now, busy ones after answering."""
        self.draining = True
        for connection in list(self.connections):
            connection.close_if_idle()


def fit_to_file_limit(max_connections: int) -> int:
    """`max_connections` lowered, if need be, to what the process's open-file limit allows.

    The soft limit is first raised towards the hard limit; past it, accept() would fail with EMFILE and
    the event loop would stop accepting for a while, refusing healthy clients along with the flood.
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + _FILES_RESERVED
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return max_connections
    fitted = max(1, soft - _FILES_RESERVED)
    log.warning("server.max_connections %d lowered to %d to fit the open-file limit (%d)",
                max_connections, fitted, soft)
    return fitted
