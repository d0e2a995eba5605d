"""Warden's HTTP/1.1 server side (RFC 9110, RFC 9112) over httptools, for `warden serve`.

Why not uvicorn: on one core, uvicorn's ASGI cycle (scope dict, receive/send
messages, per-request task and flow-control objects, two writes per answer)
added about 30 µs of CPU to a 56 µs token request; see README, "Why this server
stack". This module parses
with httptools (llhttp, the parser uvicorn uses), builds the same `Request`
value the ASGI adapter builds, and awaits the same `WardenApp.respond`, so no
endpoint behaviour lives here: only framing.

What a connection does:
- keep-alive by default (HTTP/1.1) or on request (HTTP/1.0); `Connection: close`
  is honoured and sent back;
- pipelining: requests are parsed as they arrive and answered strictly in order,
  one at a time; reading pauses while `max_pipelined` requests wait;
- bodies framed by Content-Length or chunked transfer coding (llhttp decodes it
  and refuses both at once, RFC 9112 §6.1; any other coding gets 501), capped
  at `max_body_bytes` (413);
  `Expect: 100-continue` is answered when the request is next in line;
- the request line and header section are capped (414, 431), as is the number of
  header fields, while they stream: httptools gathers one header line until it ends,
  so bytes are fed to it in slices and a head still unfinished after its cap is
  refused without waiting for the line to end; malformed input, a missing or repeated Host (RFC 9112 §3.2) and
  protocol upgrades get 400 or a plain answer, then the connection closes;
- HEAD gets the headers of GET with no body; every response carries Date and
  Content-Length;
- idle keep-alive connections close after `keep_alive_timeout`, and a request
  that takes longer than `request_timeout` to arrive gets 408;
- the write side is bounded too: reading and answering pause while the transport's
  write buffer is above its high-water mark, and a connection whose answers have
  not drained for `write_timeout` is reset (a client that pipelines and never reads);
- past `max_connections` open connections a new one gets 503 and is closed.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
import termios
from collections import deque
from typing import cast
from urllib.parse import unquote

import httptools

from warden._http11 import response_head
from warden.protocol.errors import (
    HeaderFieldsTooLarge,
    InvalidRequest,
    NotImplementedCoding,
    RequestTimeout,
    ServerError,
    TemporarilyUnavailable,
    URITooLong,
)
from warden.server.connections import ConnectionSet, Limits
from warden.server.http import Request, Response
from warden.server.render import render_error

__all__ = ["H1Connection"]

log = logging.getLogger("warden.server")


def _head_room(limits: Limits) -> int:
    """Bytes a request head may take on the wire: the capped names, values and target, plus their framing
    (request line, `: ` and CRLF per field); also the largest slice fed to the parser at once."""
    return limits.max_header_bytes + 4 * limits.max_headers + 256


def _unsent(transport: asyncio.Transport) -> int:
    """Bytes of answers not yet taken by the client: the transport's buffer, else the kernel's send queue
    (which holds a socket buffer's worth, megabytes on Linux, before the transport buffers anything)."""
    size = transport.get_write_buffer_size()
    if size or _OUTQ is None:
        return size
    sock = transport.get_extra_info("socket")
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0])
    except (AttributeError, OSError, ValueError):
        return 0


_OUTQ: int | None = getattr(termios, "TIOCOUTQ", None)  # SIOCOUTQ on Linux: unsent plus unacknowledged bytes


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the connection answers `response` and closes."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class _Item:
    """One parsed request waiting for its turn, or a refusal to send in its place."""

    __slots__ = ("head", "http10", "keep_alive", "request", "response")

    def __init__(self, request: Request | None, keep_alive: bool, head: bool, http10: bool,
                 response: Response | None = None) -> None:
        self.request = request
        self.keep_alive = keep_alive
        self.head = head
        self.http10 = http10
        self.response = response


class H1Connection(asyncio.Protocol):
    """One client connection. httptools calls the `on_*` methods as bytes arrive; each complete
    request is queued and answered in order by a task awaiting `respond`; errors in the framing
    are queued as ready answers, so what was received before them is still answered first."""

    def __init__(self, shared: ConnectionSet) -> None:
        self._shared = shared
        self._app = shared.app
        self._limits = shared.limits
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._peer: str | None = None
        self._peer_cert: bytes | None = None
        self._queue: deque[_Item] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closing = False  # nothing more is read or answered beyond what is queued
        self._write_paused = False
        self._read_paused = False
        self.last_active = self._loop.time()
        self._started: float | None = None  # when the request being received began
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_budget = 0  # bytes left for header names and values
        self._body: list[bytes] = []
        self._body_budget = 0  # bytes left for the body
        self._pending: _Item | None = None  # the request whose body is arriving
        self._slice = _head_room(self._limits)
        self._in_head = True  # the parser is before or inside a request head
        self._head_left = self._slice  # head bytes that may still be fed before the head must be complete
        self._unwritten_since: float | None = None  # when the sweep first saw answers waiting to be written

    # asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) else None
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:  # a TLS listener: the client certificate the handshake verified, DER
            self._peer_cert = tls.getpeercert(binary_form=True)
        if len(self._shared.connections) >= self._limits.max_connections:
            self._closing = True  # never parsed; not counted, so it cannot push another one out
            busy = TemporarilyUnavailable("too many connections", reason="too_many_connections", retry_after=1)
            self._send(_Item(None, False, False, False), render_error(busy))
            return
        self._shared.connections.add(self)
        if self._shared.draining:
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._shared.connections.discard(self)
        self._transport = None
        self._closing = True
        self._queue.clear()  # an answer in progress finishes; nobody is left to read it

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._pump()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self.last_active = self._loop.time()
        try:
            if len(data) < self._head_left:  # the usual case: all of it fits in what a head may still take
                if self._in_head:
                    self._head_left -= len(data)
                self._parser.feed_data(data)
            else:
                self._feed_slices(data)
        except httptools.HttpParserUpgrade:
            # RFC 9110 §7.8: a server may ignore Upgrade. The request was answered as HTTP/1.1; what
            # follows on the wire is in an unknown protocol, so the connection ends after the answer.
            if self._queue:
                self._queue[-1].keep_alive = False
            self._closing = True
        except httptools.HttpParserError as exc:
            refused = exc.__context__ if isinstance(exc.__context__, _Refused) else None
            response = refused.response if refused else render_error(InvalidRequest("malformed HTTP request", reason="bad_http"))
            self._queue.append(_Item(None, False, False, False, response))
            self._closing = True
        except _Refused as refused:
            self._queue.append(_Item(None, False, False, False, refused.response))
            self._closing = True
        self._pump()

    def _feed_slices(self, data: bytes) -> None:
        """Feed `data` at most one head's worth at a time, counting what is fed while a head is open.

        httptools appends to the current header line until it ends and calls back only then, so the
        cap is enforced here, between slices: a slice that starts inside a head counts whole, and a
        head not complete once its room is used up is refused. What the parser holds of one head is
        then at most two slices, however long the client keeps the line open."""
        view = memoryview(data)
        step = self._slice
        for start in range(0, len(view), step):
            if self._closing:
                return
            if self._in_head:
                if self._head_left <= 0:
                    raise _Refused(render_error(HeaderFieldsTooLarge("request header fields too large", reason="headers_too_large")))
                self._head_left -= min(step, len(view) - start)
            self._parser.feed_data(view[start:start + step])

    # httptools callbacks ------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._started = self.last_active
        self._url = b""
        self._headers = []
        self._header_budget = self._limits.max_header_bytes
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_budget -= len(url)
        if self._header_budget < 0:
            raise _Refused(render_error(URITooLong("request target too long", reason="uri_too_long")))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_budget -= len(name) + len(value)
        if self._header_budget < 0 or len(self._headers) >= self._limits.max_headers:
            raise _Refused(render_error(HeaderFieldsTooLarge("request header fields too large", reason="headers_too_large")))
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        http10 = parser.get_http_version() == "1.0"
        method = parser.get_method().decode("ascii")
        path, query = self._target()
        request = Request.from_pairs(method, path, query, self._headers, "")
        headers = request.headers
        hosts = headers.get(b"host")
        if (hosts is None and not http10) or b"host" in request.repeated:
            raise _Refused(render_error(InvalidRequest("exactly one Host header is required", reason="bad_host")))  # RFC 9112 §3.2
        coding = headers.get(b"transfer-encoding")
        if coding is not None and coding.strip().lower() != b"chunked":
            raise _Refused(render_error(NotImplementedCoding("transfer coding not supported", reason="transfer_coding")))  # RFC 9112 §6.1
        length = headers.get(b"content-length")  # llhttp has checked it is digits, single, and not with chunked
        if length is not None and int(length) > self._limits.max_body_bytes:
            raise _Refused(self._app.body_too_large())
        self._body_budget = self._limits.max_body_bytes
        request.peer = self._peer or ""
        request.peer_cert = self._peer_cert
        request.source = self._app.source_of(self._peer, headers)
        self._pending = _Item(request, parser.should_keep_alive(), method == "HEAD", http10)
        expect = headers.get(b"expect")
        if (expect is not None and expect.lower() == b"100-continue" and not http10
                and (coding is not None or (length is not None and int(length) > 0))
                and not self._queue and self._task is None and self._transport is not None):
            # RFC 9110 §10.1.1; only when this request is next in line, so answers stay in order.
            self._shared.post(self._transport, b"HTTP/1.1 100 Continue\r\n\r\n", False)

    def _target(self) -> tuple[str, bytes]:
        """Path (percent-decoded, as ASGI servers give it) and query of the request target."""
        url = self._url
        try:
            if url[:1] == b"/" and b"?" not in url and b"%" not in url and b"#" not in url:
                return url.decode("ascii"), b""
            parsed = httptools.parse_url(url)
            path = parsed.path.decode("ascii")
            return (unquote(path) if "%" in path else path), parsed.query or b""
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            raise _Refused(render_error(InvalidRequest("malformed request target", reason="bad_url"))) from None

    def on_body(self, body: bytes) -> None:
        self._body_budget -= len(body)
        if self._body_budget < 0:  # chunked bodies declare no length up front
            raise _Refused(self._app.body_too_large())
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._started = None
        self._in_head = True
        self._head_left = self._slice
        item, self._pending = self._pending, None
        assert item is not None and item.request is not None
        if self._body:
            item.request.body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._queue.append(item)
        if len(self._queue) >= self._limits.max_pipelined:
            self._pause_reading()

    # answering -----------------------------------------------------------------------
    def _pump(self) -> None:
        """Start answering the next queued request unless one is being answered."""
        while self._task is None and self._queue and not self._write_paused and self._transport is not None:
            item = self._queue.popleft()
            if item.response is not None:
                self._send(item, item.response)
                continue
            self._task = self._loop.create_task(self._answer(item))
        if self._read_paused and not self._write_paused and len(self._queue) < self._limits.max_pipelined:
            self._read_paused = False
            if self._transport is not None and not self._closing:
                self._transport.resume_reading()

    async def _answer(self, item: _Item) -> None:
        # The answer is written from inside the task rather than from a done-callback, which would
        # cost one more trip through the event loop per request.
        assert item.request is not None
        try:
            response = await self._app.respond(item.request)
        except asyncio.CancelledError:
            self._task = None
            self.abort()
            raise
        except Exception:  # respond() renders every error; reaching this is a bug, not a client problem
            log.exception("unanswered request on %s", item.request.path)
            response = render_error(ServerError("internal error", reason="server_error"))
            item.keep_alive = False
        self._task = None
        if self._transport is not None:
            self._send(item, response)
            self._pump()

    def _send(self, item: _Item, response: Response) -> None:
        transport = self._transport
        if transport is None:
            return
        keep_alive = item.keep_alive and not self._shared.draining and not (self._closing and not self._queue)
        body = response.body
        head = response_head(response.status, response.headers, len(body), self._shared.date_header(),
                             close=not keep_alive, http10=item.http10)
        if not item.head:
            head.append(body)
        self._shared.post(transport, b"".join(head), not keep_alive)
        self.last_active = self._loop.time()
        if not keep_alive:
            self._closing = True
            self._queue.clear()  # the transport closes once the answer is written

    # flow control, timeouts, drain -----------------------------------------------------------
    def _pause_reading(self) -> None:
        if not self._read_paused and self._transport is not None:
            self._read_paused = True
            self._transport.pause_reading()

    def _close(self) -> None:
        self._closing = True
        self._queue.clear()
        if self._transport is not None:
            self._shared.post(self._transport, b"", True)  # after any answer still waiting to be written

    def _idle(self) -> bool:
        return self._task is None and not self._queue and self._started is None

    def close_if_idle(self) -> None:
        if self._idle():
            self._close()

    def check_timeouts(self, now: float) -> None:
        transport = self._transport
        if transport is not None and _unsent(transport):
            # Answers are waiting for a client that does not read them: not idle, yet going nowhere.
            if self._unwritten_since is None:
                self._unwritten_since = now
            elif now - self._unwritten_since > self._limits.write_timeout:
                self._reset()
            return
        self._unwritten_since = None
        if self._started is not None and now - self._started > self._limits.request_timeout:
            if self._task is None and not self._queue:
                self._queue.append(_Item(None, False, False, False, render_error(RequestTimeout("request timeout", reason="timeout"))))
                self._closing = True
                self._pump()
            else:
                self.abort()
        elif self._idle() and now - self.last_active > self._limits.keep_alive_timeout:
            self._close()

    def abort(self) -> None:
        """Drop the connection now (drain deadline passed)."""
        self._closing = True
        self._queue.clear()
        if self._transport is not None:
            self._transport.abort()

    def _reset(self) -> None:
        """Drop the connection and what the kernel still holds for it (RST rather than FIN: a client that
        does not read would otherwise keep the unsent answers in the kernel after the socket closes)."""
        sock = self._transport.get_extra_info("socket") if self._transport is not None else None
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.abort()
