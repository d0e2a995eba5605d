"""Bounded HTTP retrieval of issuer metadata and JWK Sets (RFC 8414 §3, RFC 7517 §5, RFC 9111 §5.2).

Flows (`discover`) yield `Get` effects that a sync or async driver performs with
`get_sync` or `get_async`: stream a response with a size limit
and an overall deadline, read JSON documents, find `jwks_uri` in the issuer's
metadata (requiring its `issuer` to equal the configured one, RFC 8414 §3.3),
and turn `Cache-Control` into a bounded lifetime. Every failure is a
`FetchError` whose message is safe to log (no URL secrets, no bodies).
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = [
    "MAX_METADATA_BYTES",
    "FetchError",
    "Get",
    "Response",
    "discover",
    "discovery_urls",
    "fetch_async",
    "fetch_sync",
    "get_async",
    "get_sync",
    "json_document",
    "jwks_uri_from",
    "lifetime",
]

MAX_METADATA_BYTES = 64 * 1024
_FAILURES = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError)


class FetchError(Exception):
    """Discovery or JWKS retrieval failed; the message is safe to log."""


@dataclass(frozen=True)
class Get:
    """An effect of a fetch flow: GET `url`, reading at most `limit` bytes; answered with a `Response`."""

    url: str
    limit: int
    accept: str = "application/json"


@dataclass(frozen=True)
class Response:
    """A fully read, size-checked HTTP response."""

    status: int
    headers: httpx.Headers
    body: bytes


def discovery_urls(issuer: str) -> tuple[str, ...]:
    """Metadata locations to try for `issuer`, in order.

    RFC 8414 §3.1 inserts the well-known segment between the host and any path;
    the appended form (`{issuer}/.well-known/...`) and OpenID Connect Discovery
    1.0 §4 follow so that other RFC 9068 issuers are found too.
    """
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    base = issuer.rstrip("/")
    urls = [f"{origin}/.well-known/oauth-authorization-server{path}"]
    if path:
        urls.append(f"{base}/.well-known/oauth-authorization-server")
    urls.append(f"{base}/.well-known/openid-configuration")
    return tuple(dict.fromkeys(urls))


def lifetime(headers: httpx.Headers, *, default: float, low: float, high: float) -> float:
    """Seconds to keep a response per Cache-Control (RFC 9111 §5.2.2), minus `Age`, clamped to [low, high]."""
    ttl = default
    directives: dict[str, str] = {}
    for part in headers.get("cache-control", "").split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        ttl = low
    elif "max-age" in directives:
        try:
            ttl = float(int(directives["max-age"])) - float(int(headers.get("age", "0")))
        except ValueError:
            ttl = default
    return min(max(ttl, low), high)


def _check_head(response: httpx.Response, limit: int) -> None:
    if response.status_code not in (200, 404):  # 404 lets discovery try the next location
        raise FetchError(f"HTTP {response.status_code}")
    length = response.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise FetchError("response too large")


class _Body:
    """The body of a streamed response, refused once it grows past `limit` or reading passes `deadline`."""

    def __init__(self, response: httpx.Response, limit: int, deadline: float) -> None:
        _check_head(response, limit)
        self._response = response
        self._limit = limit
        self._deadline = deadline
        self._data = bytearray()

    def add(self, chunk: bytes) -> None:
        self._data += chunk
        if len(self._data) > self._limit or time.monotonic() > self._deadline:
            raise FetchError("response too large or too slow")

    def read(self) -> Response:
        return Response(self._response.status_code, self._response.headers, bytes(self._data))


def get_sync(client: httpx.Client, url: str, *, limit: int, timeout: float,
             accept: str = "application/json") -> Response:
    """GET `url`, reading at most `limit` bytes within twice `timeout` seconds overall."""
    deadline = time.monotonic() + 2 * timeout
    try:
        with client.stream("GET", url, headers={"Accept": accept}, timeout=timeout) as response:
            body = _Body(response, limit, deadline)
            for chunk in response.iter_bytes():
                body.add(chunk)
            return body.read()
    except _FAILURES as exc:
        raise FetchError(type(exc).__name__) from None


async def get_async(client: httpx.AsyncClient, url: str, *, limit: int, timeout: float,
                    accept: str = "application/json") -> Response:
    """Async form of `get_sync`."""
    deadline = time.monotonic() + 2 * timeout
    try:
        async with client.stream("GET", url, headers={"Accept": accept}, timeout=timeout) as response:
            body = _Body(response, limit, deadline)
            async for chunk in response.aiter_bytes():
                body.add(chunk)
            return body.read()
    except _FAILURES as exc:
        raise FetchError(type(exc).__name__) from None


def fetch_sync(client: httpx.Client | None, get: Get, timeout: float) -> Response:
    """Perform `get` with `client`, or with a client opened for it alone."""
    if client is not None:
        return get_sync(client, get.url, limit=get.limit, timeout=timeout, accept=get.accept)
    with httpx.Client(timeout=timeout, follow_redirects=False) as own:
        return get_sync(own, get.url, limit=get.limit, timeout=timeout, accept=get.accept)


async def fetch_async(client: httpx.AsyncClient | None, get: Get, timeout: float) -> Response:
    """Async form of `fetch_sync`."""
    if client is None:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as own:
            return await get_async(own, get.url, limit=get.limit, timeout=timeout, accept=get.accept)
    return await get_async(client, get.url, limit=get.limit, timeout=timeout, accept=get.accept)


def json_document(response: Response, what: str) -> dict[str, Any]:
    """The body of a 200 response as a JSON object."""
    if response.status != 200:
        raise FetchError(f"{what}: HTTP {response.status}")
    try:
        document = json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FetchError(f"{what} is not JSON") from None
    if not isinstance(document, dict):
        raise FetchError(f"{what} is not a JSON object")
    return document


def jwks_uri_from(response: Response, issuer: str) -> str:
    """`jwks_uri` of the metadata in `response`, which must be `issuer`'s (RFC 8414 §3.3)."""
    document = json_document(response, "metadata")
    if document.get("issuer") != issuer:
        raise FetchError("metadata issuer does not match")
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise FetchError("metadata has no jwks_uri")
    scheme = urlsplit(jwks_uri).scheme
    # https only, unless the issuer itself is plain http (a local development issuer).
    if scheme != "https" and not (scheme == "http" and urlsplit(issuer).scheme == "http"):
        raise FetchError("jwks_uri must use https")
    return jwks_uri


def discover(issuer: str, *, limit: int = MAX_METADATA_BYTES) -> Generator[Get, Response, str]:
    """A flow: try each metadata location; the first that exists must name `issuer`."""
    for url in discovery_urls(issuer):
        response = yield Get(url, limit)
        if response.status != 404:
            return jwks_uri_from(response, issuer)
    raise FetchError("no authorization server metadata found")
