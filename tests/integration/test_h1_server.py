"""Warden's HTTP/1.1 server (`warden serve`): framing, limits, keep-alive, pipelining and drain, driven
with raw bytes over real sockets. The application here echoes what it was given, so each test sees
exactly what the server parsed; Warden's own endpoints over this server are covered by the
integration tests that run on both stacks (`server` fixture)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import pytest
from tests.integration.conftest import wait_until
from tests.integration.h1_harness import Reader, ThreadedH1, request
from tests.integration.h1_harness import connect as _connect

from warden.server.connections import Limits
from warden.server.http import Request, Response

LIMITS = Limits(max_body_bytes=1024, max_header_bytes=2048, max_headers=20, keep_alive_timeout=60,
                request_timeout=60)


class EchoApp:
    """Answers every request with a JSON description of it; `/slow?S` waits S seconds, `/boom` fails."""

    max_body_bytes = 1024

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lifespan: list[str] = []

    def source_of(self, peer: str | None, headers: dict[bytes, bytes]) -> str:
        return peer or "unknown"

    async def respond(self, request: Request) -> Response:
        self.requests.append(request)
        if request.path == "/slow":
            await asyncio.sleep(float(request.query_string or b"0.5"))
        if request.path == "/boom":
            raise RuntimeError("a bug in the application")
        body = json.dumps({
            "method": request.method, "path": request.path, "query": request.query_string.decode(),
            "body": request.body.decode("latin-1"), "source": request.source, "peer": request.peer,
            "headers": {k.decode(): v.decode("latin-1") for k, v in request.headers.items()},
            "repeated": sorted(n.decode() for n in request.repeated)}).encode()
        return Response(200, body, [(b"content-type", b"application/json")])

    def body_too_large(self) -> Response:
        return Response(413, b'{"error":"invalid_request"}', [(b"content-type", b"application/json")])

    async def startup(self) -> None:
        self.lifespan.append("startup")

    async def shutdown(self) -> None:
        self.lifespan.append("shutdown")


_open: list[socket.socket] = []


def connect(port: int) -> socket.socket:
    sock = _connect(port)
    _open.append(sock)
    return sock


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


@pytest.fixture
def echo() -> EchoApp:
    return EchoApp()


@pytest.fixture
def h1(echo: EchoApp) -> Iterator[ThreadedH1]:
    server = ThreadedH1(echo, LIMITS)
    yield server
    server.stop()


def exchange(port: int, data: bytes, responses: int = 1) -> tuple[list[tuple[int, dict[str, str], bytes]], Reader]:
    sock = connect(port)
    sock.sendall(data)
    reader = Reader(sock)
    return [reader.response() for _ in range(responses)], reader


def test_keep_alive_serves_several_requests_on_one_connection(h1: ThreadedH1):
    sock = connect(h1.port)
    reader = Reader(sock)
    for i in range(3):
        sock.sendall(request("GET", f"/n{i}"))
        status, headers, body = reader.response()
        assert status == 200 and json.loads(body)["path"] == f"/n{i}"
        assert "connection" not in headers and headers["content-length"] == str(len(body))
        assert headers["date"].endswith(" GMT")
    sock.close()


def test_pipelined_requests_are_answered_in_order(h1: ThreadedH1):
    data = request("GET", "/slow?0.2") + request("POST", "/b", body=b"x=1") + request("GET", "/c?q=1")
    answers, _ = exchange(h1.port, data, 3)
    assert [json.loads(body)["path"] for _, _, body in answers] == ["/slow", "/b", "/c"]
    assert json.loads(answers[1][2])["body"] == "x=1" and json.loads(answers[2][2])["query"] == "q=1"


def test_request_is_parsed_as_the_asgi_adapter_would(h1: ThreadedH1):
    data = request("POST", "/a%20b?x=1&y=2", {"X-Twice": "one", "x-twice": "two", "Content-Type": "text/plain"},
                   body=b"hello")
    [(status, _, body)], _ = exchange(h1.port, data)
    seen = json.loads(body)
    assert status == 200 and seen["path"] == "/a b" and seen["query"] == "x=1&y=2"
    assert seen["headers"]["x-twice"] == "one, two" and seen["repeated"] == ["x-twice"]
    assert seen["headers"]["content-type"] == "text/plain" and seen["body"] == "hello"
    assert seen["peer"] == "127.0.0.1" and seen["source"] == "127.0.0.1"


def test_head_gets_headers_without_a_body(h1: ThreadedH1):
    sock = connect(h1.port)
    reader = Reader(sock)
    sock.sendall(request("HEAD", "/x") + request("GET", "/x"))
    status, headers, body = reader.response(head_only=True)
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    status, _, get_body = reader.response()  # the next answer starts right after the head
    assert status == 200 and len(get_body) == int(headers["content-length"]) - 1  # method name differs by one
    sock.close()


def test_chunked_body_is_decoded(h1: ThreadedH1):
    data = request("POST", "/c", {"Transfer-Encoding": "chunked"}, body=b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    [(status, _, body)], _ = exchange(h1.port, data)
    assert status == 200 and json.loads(body)["body"] == "abcde"


@pytest.mark.parametrize("data, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400),
    (request("POST", "/", {"Content-Length": "3", "Transfer-Encoding": "chunked"}, b"3\r\nabc\r\n0\r\n\r\n"), 400),
    (request("POST", "/", {"Content-Length": "abc"}), 400),
    (request("POST", "/", {"Transfer-Encoding": "gzip, chunked"}, b"0\r\n\r\n"), 501),
    (request("GET", "/", {"Host": None}), 400),  # HTTP/1.1 without Host (RFC 9112 §3.2)
    (request("GET", "/", {"X": "y"}).replace(b"Host: 127.0.0.1\r\n", b"Host: a\r\nHost: b\r\n"), 400),
    (request("GET", "/" + "a" * 3000), 414),
    (request("GET", "/", {"X-Big": "v" * 3000}), 431),
    (request("GET", "/", {f"X-{i}": "v" for i in range(30)}), 431),
    (request("POST", "/", {"Content-Length": "5000"}), 413),  # refused before the body is read
])
def test_malformed_or_oversize_requests_are_refused_and_the_connection_closed(h1: ThreadedH1, echo: EchoApp,
                                                                              data: bytes, status: int):
    [(got, headers, _)], reader = exchange(h1.port, data)
    assert got == status and headers["connection"] == "close"
    assert reader.closed()
    assert echo.requests == []


def test_chunked_body_over_the_limit_is_refused(h1: ThreadedH1):
    chunk = b"400\r\n" + b"a" * 1024 + b"\r\n"
    [(status, _, _)], reader = exchange(h1.port, request("POST", "/", {"Transfer-Encoding": "chunked"},
                                                         chunk + chunk + b"0\r\n\r\n"))
    assert status == 413 and reader.closed()


def test_requests_before_a_malformed_one_are_answered_and_nothing_after_it(h1: ThreadedH1, echo: EchoApp):
    data = request("GET", "/first") + b"NOT HTTP\r\n\r\n" + request("GET", "/never")
    answers, reader = exchange(h1.port, data, 2)
    assert [status for status, _, _ in answers] == [200, 400]
    assert reader.closed() and [r.path for r in echo.requests] == ["/first"]


def test_connection_close_is_honoured(h1: ThreadedH1, echo: EchoApp):
    data = request("GET", "/a", {"Connection": "close"}) + request("GET", "/b")
    [(status, headers, _)], reader = exchange(h1.port, data)
    assert status == 200 and headers["connection"] == "close" and reader.closed()
    assert [r.path for r in echo.requests] == ["/a"]


def test_http10_closes_unless_asked_to_keep_alive(h1: ThreadedH1):
    [(_, headers, _)], reader = exchange(h1.port, b"GET /a HTTP/1.0\r\n\r\n")
    assert headers["connection"] == "close" and reader.closed()
    sock = connect(h1.port)
    reader = Reader(sock)
    for _ in range(2):
        sock.sendall(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        _, headers, _ = reader.response()
        assert headers["connection"] == "keep-alive"
    sock.close()


def test_expect_100_continue_is_answered_before_the_body(h1: ThreadedH1):
    sock = connect(h1.port)
    reader = Reader(sock)
    sock.sendall(request("POST", "/e", {"Content-Length": "3", "Expect": "100-continue"}))
    status, _, _ = reader.response()
    assert status == 100
    sock.sendall(b"abc")
    status, _, body = reader.response()
    assert status == 200 and json.loads(body)["body"] == "abc"
    sock.close()


def test_upgrade_is_ignored_and_the_connection_closed_after_the_answer(h1: ThreadedH1):
    data = request("GET", "/u", {"Upgrade": "h2c", "Connection": "Upgrade, HTTP2-Settings"})
    [(status, headers, _)], reader = exchange(h1.port, data)
    assert status == 200 and headers["connection"] == "close" and reader.closed()


def test_an_application_bug_is_a_500_and_the_connection_closes(h1: ThreadedH1):
    [(status, headers, _)], reader = exchange(h1.port, request("GET", "/boom"))
    assert status == 500 and headers["connection"] == "close" and reader.closed()


def test_many_connections_each_get_their_own_answers(h1: ThreadedH1):
    socks = [connect(h1.port) for _ in range(20)]
    readers = [Reader(s) for s in socks]
    for round_ in range(5):
        for i, sock in enumerate(socks):
            sock.sendall(request("GET", f"/c{i}?r={round_}"))
        for i, reader in enumerate(readers):
            seen = json.loads(reader.response()[2])
            assert (seen["path"], seen["query"]) == (f"/c{i}", f"r={round_}")
    for sock in socks:
        sock.close()


def test_idle_and_slow_connections_time_out():
    server = ThreadedH1(EchoApp(), Limits(max_body_bytes=1024, keep_alive_timeout=0.2, request_timeout=0.5))
    try:
        idle = Reader(connect(server.port))
        slow = connect(server.port)
        slow.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Part")  # a request that never finishes (slowloris)
        assert idle.closed()
        status, headers, _ = Reader(slow).response()
        assert status == 408 and headers["connection"] == "close"
    finally:
        server.stop()


def test_drain_answers_what_has_arrived_closes_the_rest_and_stops_accepting(echo: EchoApp):
    server = ThreadedH1(echo, LIMITS, graceful_timeout=10)
    idle = Reader(connect(server.port))
    busy_sock = connect(server.port)
    busy = Reader(busy_sock)
    busy_sock.sendall(request("GET", "/slow?1.0"))
    assert wait_until(lambda: len(echo.requests) == 1)
    server.stop(wait=False)
    assert idle.closed()
    status, headers, _ = busy.response()
    assert status == 200 and headers["connection"] == "close" and busy.closed()
    assert server.join(30)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    assert echo.lifespan == ["startup", "shutdown"]


def test_drain_drops_what_is_still_busy_after_the_grace_period(echo: EchoApp):
    server = ThreadedH1(echo, LIMITS, graceful_timeout=0.3)
    sock = connect(server.port)
    sock.sendall(request("GET", "/slow?5"))
    assert wait_until(lambda: len(echo.requests) == 1)
    server.stop(wait=False)
    assert Reader(sock).closed()
    assert server.join(30) and echo.lifespan == ["startup", "shutdown"]


def test_a_header_line_that_never_ends_is_refused_while_it_streams(h1: ThreadedH1, echo: EchoApp):
    # httptools gathers a header line until it ends: the cap must hold before the line does (issue 8 #3).
    sock = connect(h1.port)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 4 * LIMITS.max_header_bytes)  # no line end
    status, headers, _ = Reader(sock).response()
    assert status == 431 and headers["connection"] == "close"
    assert echo.requests == []


def test_a_one_mebibyte_header_value_is_refused_without_being_held(h1: ThreadedH1):
    import tracemalloc

    payload = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * (1 << 20)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        sock = connect(h1.port)
        view, sent = memoryview(payload), 0
        try:
            while sent < len(view):
                sent += sock.send(view[sent:sent + 16384])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused and closed while the value was still arriving
        try:
            answer: tuple[int, dict[str, str], bytes] | None = Reader(sock).response()
        except ConnectionResetError:
            answer = None  # the 431 was sent, then the unread rest of the value reset the connection
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert answer is None or answer[0] == 431
    assert peak < 256 * 1024  # what the server held of the value: a few slices, not the mebibyte


def test_file_limit_lowers_max_connections_to_fit():
    import subprocess
    import sys

    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200));"
            "from warden.server.connections import fit_to_file_limit;"
            "print(fit_to_file_limit(4096), fit_to_file_limit(100))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["136", "100"]
