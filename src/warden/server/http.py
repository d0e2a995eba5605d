"""Request and response values shared by both ways of serving Warden, plus ASGI plumbing.

The token endpoint is the hot path of every service call, so the application is
not built on a framework: a `Request` is a plain value with headers decoded
once, and a `Response` is status, body and pre-encoded headers. The ASGI
adapter (`WardenApp.__call__`) and Warden's own HTTP/1.1 server (`h1.py`) both
turn the wire into a `Request` with `Request.from_pairs` and hand it to the
same `WardenApp.respond`, so routing, limits and errors cannot diverge.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from warden.asgi_types import Receive, Scope, Send

__all__ = [
    "JSON_CONTENT",
    "NO_STORE",
    "BodyTooLarge",
    "Receive",
    "Request",
    "Response",
    "Scope",
    "Send",
    "json_response",
    "read_body",
]

NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
JSON_CONTENT = (b"content-type", b"application/json")


class BodyTooLarge(Exception):
    pass


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query_string: bytes
    headers: dict[bytes, bytes]  # lower-case names; repeated names joined with b", "
    repeated: frozenset[bytes]  # header names that appeared more than once
    source: str
    body: bytes = b""
    peer_cert: bytes | None = None  # the client certificate of a TLS connection Warden terminated (PEM or DER)
    peer: str = ""  # the address of the TCP peer (a proxy, when there is one); `source` is the client

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None

    @classmethod
    def from_pairs(cls, method: str, path: str, query_string: bytes, pairs: Iterable[tuple[bytes, bytes]],
                   source: str) -> Request:
        """Build a request from header (name, value) pairs; names must already be lower-case."""
        headers: dict[bytes, bytes] = {}
        repeated: set[bytes] | None = None
        for name, value in pairs:
            if name in headers:
                if repeated is None:
                    repeated = set()
                repeated.add(name)
                headers[name] += b", " + value
            else:
                headers[name] = value
        return cls(method, path, query_string, headers, frozenset(repeated) if repeated else _NONE, source)

    @classmethod
    def from_scope(cls, scope: Scope, source: str) -> Request:
        request = cls.from_pairs(scope["method"], scope["path"], scope.get("query_string", b""), scope["headers"],
                                 source)
        tls = scope.get("extensions", {}).get("tls")  # ASGI TLS extension: client_cert_chain, PEM strings
        if tls and tls.get("client_cert_chain"):
            request.peer_cert = tls["client_cert_chain"][0].encode("ascii")
        return request


_NONE: frozenset[bytes] = frozenset()


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]

    async def send(self, send: Send) -> None:
        headers = self.headers + [(b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def json_response(status: int, data: Any, headers: Iterable[tuple[bytes, bytes]] = ()) -> Response:
    return Response(status, json.dumps(data, separators=(",", ":")).encode("utf-8"), [JSON_CONTENT, *headers])
