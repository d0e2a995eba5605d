"""The only place the client library does network I/O: httpx, sync and async.

TLS verification is always on (RFC 6749 §10.9; T63): a caller-supplied SSL
context with verification disabled is refused, and the default context is
httpx's. Redirects are never followed for token and metadata requests, and
answers are read up to a size limit. When no httpx client is injected, one is
opened per request with a shared SSL context and closed at once, so the
library holds no sockets between token fetches (they are minutes apart).
"""

from __future__ import annotations

import dataclasses
import functools
import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx

from warden.client._messages import HTTPRequest, HTTPResponse, TransportFailure
from warden.client._response import MAX_RESPONSE_BYTES
from warden.core.tracing import inject_traceparent, set_attributes, span
from warden.errors import ConfigError

__all__ = ["HTTPXTransport", "check_ssl_context"]


def check_ssl_context(context: ssl.SSLContext) -> None:
    """Refuse an SSL context that would not verify the server (T63)."""
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise ConfigError("ssl_context must verify certificates and host names")


@functools.lru_cache(maxsize=1)
def _default_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def _failure(exc: Exception) -> TransportFailure:
    return TransportFailure(f"{type(exc).__name__}: {exc}"[:200])


def _response(status: int, headers: httpx.Headers, body: bytes) -> HTTPResponse:
    merged: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return HTTPResponse(status, merged, body)


class HTTPXTransport:
    """Sends `HTTPRequest`s with httpx and returns `HTTPResponse` or `TransportFailure`."""

    def __init__(
        self,
        *,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
    ) -> None:
        if ssl_context is not None:
            check_ssl_context(ssl_context)
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._client = client
        self._async_client = async_client

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context if self._ssl_context is not None else _default_ssl_context()

    def _options(self) -> dict[str, Any]:
        return {"verify": self._context(), "timeout": self._timeout, "follow_redirects": False}

    def send(self, request: HTTPRequest) -> HTTPResponse | TransportFailure:
        with span("warden.client.request", **_span_attributes(request)) as current:
            try:
                reply = self._send(_traced(request))
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                reply = _failure(exc)
            return _end(current, reply)

    def _send(self, request: HTTPRequest) -> HTTPResponse | TransportFailure:
        if self._client is not None:
            return self._read(self._client, request)
        with httpx.Client(**self._options()) as client:
            return self._read(client, request)

    def _read(self, client: httpx.Client, request: HTTPRequest) -> HTTPResponse | TransportFailure:
        with client.stream(**_stream_arguments(request, self._timeout)) as response:
            body = _Body()
            for chunk in response.iter_bytes():
                if not body.add(chunk):
                    return TransportFailure("response too large")
            return body.response(response)

    async def asend(self, request: HTTPRequest) -> HTTPResponse | TransportFailure:
        with span("warden.client.request", **_span_attributes(request)) as current:
            try:
                reply = await self._asend(_traced(request))
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                reply = _failure(exc)
            return _end(current, reply)

    async def _asend(self, request: HTTPRequest) -> HTTPResponse | TransportFailure:
        if self._async_client is not None:
            return await self._aread(self._async_client, request)
        async with httpx.AsyncClient(**self._options()) as client:
            return await self._aread(client, request)

    async def _aread(self, client: httpx.AsyncClient, request: HTTPRequest) -> HTTPResponse | TransportFailure:
        async with client.stream(**_stream_arguments(request, self._timeout)) as response:
            body = _Body()
            async for chunk in response.aiter_bytes():
                if not body.add(chunk):
                    return TransportFailure("response too large")
            return body.response(response)


def _stream_arguments(request: HTTPRequest, timeout: float) -> dict[str, Any]:
    return {"method": request.method, "url": request.url, "headers": list(request.headers),
            "content": request.body or None, "timeout": timeout, "follow_redirects": False}


class _Body:
    """An answer's body as it streams in, up to `MAX_RESPONSE_BYTES`."""

    def __init__(self) -> None:
        self._data = bytearray()

    def add(self, chunk: bytes) -> bool:
        """Take `chunk`; False once the body is over the limit."""
        self._data += chunk
        return len(self._data) <= MAX_RESPONSE_BYTES

    def response(self, response: httpx.Response) -> HTTPResponse:
        return _response(response.status_code, response.headers, bytes(self._data))


def _span_attributes(request: HTTPRequest) -> dict[str, str]:
    """Method and URL without query (never headers or body: they carry the credentials)."""
    parts = urlsplit(request.url)
    host = parts.netloc.rpartition("@")[2]  # never userinfo
    return {"http.request.method": request.method, "url.full": f"{parts.scheme}://{host}{parts.path}"}


def _traced(request: HTTPRequest) -> HTTPRequest:
    headers: dict[str, str] = {}
    inject_traceparent(headers)
    if not headers:
        return request
    return dataclasses.replace(request, headers=request.headers + tuple(headers.items()))


def _end(current: object, reply: HTTPResponse | TransportFailure) -> HTTPResponse | TransportFailure:
    if current is not None:
        if isinstance(reply, HTTPResponse):
            set_attributes(current, {"http.response.status_code": reply.status})
        else:
            set_attributes(current, {"error.type": "network"})
    return reply
