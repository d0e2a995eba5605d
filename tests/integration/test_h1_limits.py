"""Warden's own HTTP/1.1 server (`warden serve`) under the production application, with its connection
limits from settings: clients that never read their answers, and more connections than a worker takes
(issue 8 #4). Driven with raw sockets; the framing caps are in test_h1_server.py."""

from __future__ import annotations

import select
import socket
from collections.abc import Callable

from tests.integration.conftest import LiveServer, wait_until
from tests.integration.h1_harness import Reader, request


def _port(live: LiveServer) -> int:
    return int(live.url.rsplit(":", 1)[1])


def _healthz(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request("GET", "/healthz", {"Connection": "close"}))
        return Reader(sock).response()[0]


def test_a_client_that_pipelines_and_never_reads_is_reset_after_the_write_timeout(
        start_server: Callable[..., LiveServer]):
    live = start_server(stack="h1", **{"server.write_timeout": 0.5})
    port = _port(live)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(10)
    # Complete requests only (as in the report: 400 pipelined, then nothing read), so no request is left
    # half-received for the request timeout to catch; their answers far exceed what socket buffers hold.
    sock.sendall(request("GET", "/.well-known/oauth-authorization-server") * 2000)
    poller = select.poll()
    poller.register(sock, select.POLLERR | select.POLLHUP)
    assert wait_until(lambda: bool(poller.poll(0)), timeout=30), "connection still open"
    sock.close()
    assert _healthz(port) == 200


def test_connections_past_the_cap_are_refused_and_room_returns_when_others_close(
        start_server: Callable[..., LiveServer]):
    live = start_server(stack="h1", **{"server.max_connections": 3, "server.write_timeout": 30})
    port = _port(live)
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
    try:
        for sock in held:
            sock.sendall(request("GET", "/healthz"))
            assert Reader(sock).response()[0] == 200  # accepted and kept alive
        with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
            extra.sendall(request("GET", "/healthz"))
            status, headers, _ = Reader(extra).response()
            assert status == 503 and headers["connection"] == "close" and headers["retry-after"] == "1"
        held.pop().close()
        assert wait_until(lambda: _healthz(port) == 200, timeout=10)
    finally:
        for sock in held:
            sock.close()
