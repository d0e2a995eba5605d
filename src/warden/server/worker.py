"""One serving process: the application's lifespan around an HTTP/1.1 listener, and a graceful drain.

Start-up runs `WardenApp.startup` before the first connection is accepted (as an
ASGI lifespan would). SIGTERM or SIGINT stops accepting, lets every request
that has arrived be answered (each with `Connection: close`), closes idle
connections, and after `graceful_timeout` seconds drops whatever is left; then
`WardenApp.shutdown` flushes audit events and secret-use times.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import BaseContext

from warden.errors import ConfigError
from warden.server.connections import ConnectionSet, Limits, Responder, fit_to_file_limit
from warden.server.h1 import H1Connection
from warden.services.ratelimit import SharedBuckets, SharedMemoryRateLimiter
from warden.settings import Settings

__all__ = ["H1Server", "SharedLimits", "limits_for", "run_worker", "serve_app", "tls_context"]

log = logging.getLogger("warden.server")


@dataclass(frozen=True)
class SharedLimits:
    """The bucket tables one server's workers share (made by the supervisor before any worker starts),
    so each per-client rate limit and failed-authentication budget holds once for the whole server."""

    rate: SharedBuckets
    failed_auth: SharedBuckets

    @classmethod
    def create(cls, context: BaseContext) -> SharedLimits:
        return cls(SharedBuckets.create(context), SharedBuckets.create(context))


class H1Server:
    """The listener of one process, usable on its own (tests) or under `serve_app`."""

    def __init__(self, app: Responder, limits: Limits) -> None:
        self.shared = ConnectionSet(app, limits)
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, sock: socket.socket, tls: ssl.SSLContext | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: H1Connection(self.shared), sock=sock, backlog=2048,
                                                ssl=tls)
        self._sweeper = loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            self.shared.sweep(loop.time())

    async def drain(self, timeout: float) -> int:
        """Stop accepting, finish what has arrived, close; return how many connections were dropped."""
        if self._server is not None:
            self._server.close()  # the listening socket stops accepting (shared sockets stay open elsewhere)
        self.shared.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.shared.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
            self.shared.drain()  # connections that went idle meanwhile
        dropped = len(self.shared.connections)
        for connection in list(self.shared.connections):
            connection.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        return dropped


async def serve_app(app: Responder, sock: socket.socket, limits: Limits, graceful_timeout: float,
                    stop: asyncio.Event | None = None, tls: ssl.SSLContext | None = None,
                    on_serving: Callable[[], object] | None = None,
                    heartbeat: Callable[[], object] | None = None, heartbeat_interval: float = 1.0) -> None:
    """Serve `app` on `sock` until SIGTERM/SIGINT, or until `stop` is set when one is given, then drain.
    `heartbeat`, when given, is called from the event loop every `heartbeat_interval` seconds once serving,
    so a loop that stops turning (a busy loop, SIGSTOP) stops calling it (the supervisor watches)."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    await app.startup()
    server = H1Server(app, limits)
    await server.start(sock, tls)
    log.info("worker %d serving on %s", os.getpid(), _address(sock))
    if on_serving is not None:
        on_serving()
    beats = asyncio.get_running_loop().create_task(_beat(heartbeat, heartbeat_interval)) if heartbeat else None
    await stop.wait()
    log.info("worker %d draining %d connection(s)", os.getpid(), len(server.shared.connections))
    dropped = await server.drain(graceful_timeout)
    if beats is not None:  # beats go on through the drain: a long drain is not a hang
        beats.cancel()
        await asyncio.gather(beats, return_exceptions=True)
    if dropped:
        log.warning("worker %d dropped %d connection(s) still busy after %ss", os.getpid(), dropped,
                    graceful_timeout)
    await app.shutdown()
    log.info("worker %d shutdown complete", os.getpid())


async def _beat(heartbeat: Callable[[], object], interval: float) -> None:
    while True:
        heartbeat()
        await asyncio.sleep(interval)


def _address(sock: socket.socket) -> str:
    name = sock.getsockname()
    return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name)


def limits_for(settings: Settings, max_body_bytes: int) -> Limits:
    """The listener's limits from the settings; connections fitted to the open-file limit."""
    server = settings.server
    return Limits(max_body_bytes=max_body_bytes, max_header_bytes=server.max_header_bytes,
                  max_headers=server.max_headers, max_pipelined=server.max_pipelined,
                  keep_alive_timeout=float(server.keep_alive_timeout), request_timeout=float(server.request_timeout),
                  write_timeout=float(server.write_timeout), max_connections=fit_to_file_limit(server.max_connections))


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of Warden's own HTTPS listener, or None for plain HTTP.

    With `server.tls_client_ca` clients are asked for a certificate (optional at the TLS layer, so
    clients without one still connect); one that is presented must chain to those CAs, and it reaches
    the application for mutual-TLS client authentication and certificate-bound tokens (RFC 8705).
    Raises ConfigError for files that cannot be loaded.
    """
    server = settings.server
    if not server.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(server.tls_cert, server.tls_key or None)
        if server.tls_client_ca:
            context.load_verify_locations(server.tls_client_ca)
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"setting server.tls_*: cannot load the TLS certificate, key or CA: {exc}") from None
    return context


def run_worker(settings: Settings, sock: socket.socket, on_serving: Callable[[], object] | None = None,
               shared: SharedLimits | None = None, heartbeat: Callable[[], object] | None = None) -> int:
    """Process entry point (also the supervisor's spawn target): build the app and serve until told to stop.
    `on_serving` is called once the application has started and connections are being accepted; `shared`
    are the supervisor's limit tables (None: this process's own); `heartbeat` is called from the event
    loop about four times per `server.heartbeat_timeout` while serving."""
    from warden.server.app import create_app

    try:
        import uvloop  # the measured choice; the standard loop serves too (more slowly) where uvloop is missing

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None

    from warden.server.log_format import configure_logging

    configure_logging(settings.log_level, settings.log.format)
    from warden.server.tracing import configure_tracing

    tracer_provider = configure_tracing(os.environ)  # the standard OTEL_* variables; None when tracing is off
    if shared is not None and settings.redis_url is None:  # with Redis the limits are the cluster's
        app = create_app(settings, rate_limiter=SharedMemoryRateLimiter(shared.rate),
                         failed_auth_limiter=SharedMemoryRateLimiter(shared.failed_auth))
    else:
        app = create_app(settings)
    limits = limits_for(settings, app.max_body_bytes)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve_app(app, sock, limits, float(settings.server.graceful_timeout),
                                 on_serving=on_serving, tls=tls_context(settings), heartbeat=heartbeat,
                                 heartbeat_interval=max(0.05, settings.server.heartbeat_timeout / 4)))
    except Exception as exc:
        sys.stderr.write(f"warden: worker {os.getpid()} failed: {exc}\n")
        return 3
    finally:
        if tracer_provider is not None:
            tracer_provider.shutdown()  # exports the spans still queued
    return 0
