"""Run Warden's HTTP/1.1 server (`warden.server.h1`) in a thread on a free port, and talk raw HTTP to it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvloop

from warden.server.connections import Limits, Responder
from warden.server.worker import serve_app


class ThreadedH1:
    """`serve_app` on its own uvloop loop in a daemon thread; `stop()` drains like SIGTERM does."""

    def __init__(self, app: Responder, limits: Limits | None = None, graceful_timeout: float = 5.0,
                 port: int = 0) -> None:
        self.sock = socket.create_server(("127.0.0.1", port), backlog=128)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._limits = limits or Limits(max_body_bytes=app.max_body_bytes)
        self._graceful = graceful_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(app,), daemon=True)
        self._thread.start()
        assert self._ready.wait(20), "server thread did not start"

    def _run(self, app: Responder) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await serve_app(app, self.sock, self._limits, self._graceful, stop=self._stop)

        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(main())
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    def stop(self, wait: bool = True) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if wait:
            self._thread.join(timeout=30)
            self.sock.close()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


class Reader:
    """Reads HTTP/1.1 responses off a socket: status, lower-case headers, body (Content-Length framing)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"closed before a full response head: {self.buffer!r}")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only or status in (100, 204, 304) else int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            if not self._fill():
                raise ConnectionError("closed before the full body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed(self, timeout: float = 10.0) -> bool:
        """True once the server has closed the connection (and sent nothing more)."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        while time.monotonic() < deadline:
            try:
                if not self._fill():
                    return True
            except ConnectionResetError:
                return True
        return False


def request(method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"",
            version: str = "HTTP/1.1", **extra: Any) -> bytes:
    lines = [f"{method} {target} {version}"]
    merged = {"Host": "127.0.0.1"}
    merged.update(headers or {})
    if body and "Content-Length" not in merged and "Transfer-Encoding" not in merged:
        merged["Content-Length"] = str(len(body))
    lines += [f"{name}: {value}" for name, value in merged.items() if value is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
