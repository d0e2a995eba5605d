"""Minimal ASGI request/response plumbing for Warden's endpoints.

The token endpoint is the hot path of every service call, so the application is
plain ASGI: no framework object per request, headers pre-encoded, one body read
with a hard size limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, MutableMapping

__all__ = ["Scope", "Receive", "Send", "Request", "Response", "BodyTooLarge", "read_body", "json_response",
           "NO_STORE"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
_JSON = (b"content-type", b"application/json")


class BodyTooLarge(Exception):
    pass


@dataclass
class Request:
    method: str
    path: str
    query_string: bytes
    headers: dict[bytes, bytes]  # lower-case names; repeated names joined with b", "
    repeated: frozenset[bytes]  # header names that appeared more than once
    source: str
    body: bytes = b""

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None

    @classmethod
    def from_scope(cls, scope: Scope, source: str) -> "Request":
        headers: dict[bytes, bytes] = {}
        repeated = set()
        for name, value in scope["headers"]:
            if name in headers:
                repeated.add(name)
                headers[name] += b", " + value
            else:
                headers[name] = value
        return cls(scope["method"], scope["path"], scope.get("query_string", b""), headers,
                   frozenset(repeated), source)


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


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]

    async def send(self, send: Send) -> None:
        headers = self.headers + [(b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def json_response(status: int, data: Any, headers: Iterable[tuple[bytes, bytes]] = ()) -> Response:
    return Response(status, json.dumps(data, separators=(",", ":")).encode("utf-8"), [_JSON, *headers])
