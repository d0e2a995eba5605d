"""A minimal HTTP/1.1 responder for the agent: GET only, one request per connection (RFC 9110, RFC 9112).

Hardening, because whoever reaches this socket gets tokens (T66):

- The request head is capped in size and read time; request bodies are refused
  (`Content-Length` other than 0, any `Transfer-Encoding`), so there is nothing
  to smuggle; the connection closes after every answer.
- On TCP the `Host` header must name a loopback host (and our port, when it
  names one). A DNS-rebinding page reaches 127.0.0.1 under its own host name and
  is refused here.
- Requests that carry browser fetch metadata (`Origin`, `Sec-Fetch-*`) are
  refused, and no CORS header is ever sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from warden._http11 import DateHeader, response_head
from warden.core.urls import is_loopback_host

__all__ = [
    "MAX_HEAD_BYTES",
    "HTTPProblem",
    "HTTPRequest",
    "is_allowed_host",
    "is_browser_request",
    "parse_request_head",
    "render_response",
]

MAX_HEAD_BYTES = 8192
MAX_HEADERS = 64
MAX_TARGET_CHARS = 2048
MAX_QUERY_FIELDS = 16
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_BROWSER_HEADERS = ("origin", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest")


class HTTPProblem(Exception):
    """A request that is answered with an error status before reaching a route."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class HTTPRequest:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names


def parse_request_head(head: bytes) -> HTTPRequest:
    """Parse a request line and header section (ending in CRLF CRLF); raise HTTPProblem if unacceptable."""
    if len(head) > MAX_HEAD_BYTES:
        raise HTTPProblem(431, "request head too large")
    text = head.decode("latin-1")
    text = text.removesuffix("\r\n\r\n")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise HTTPProblem(400, "malformed request line")
    method, target, version = parts
    if (
        not target.startswith("/")
        or len(target) > MAX_TARGET_CHARS
        or not target.isascii()
        or not target.isprintable()
    ):
        raise HTTPProblem(400, "malformed request target")
    headers: dict[str, str] = {}
    if len(lines) - 1 > MAX_HEADERS:
        raise HTTPProblem(431, "too many header fields")
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        # RFC 9112 §5.1: no whitespace before the colon; §5.2: obsolete line folding is refused.
        if not sep or not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise HTTPProblem(400, "malformed header field")
        key = name.lower()
        value = value.strip(" \t")
        if key in headers:
            if key in ("host", "content-length", "transfer-encoding"):
                raise HTTPProblem(400, f"repeated {key} header")
            headers[key] = f"{headers[key]}, {value}"
        else:
            headers[key] = value
    if "transfer-encoding" in headers or headers.get("content-length", "0") != "0":
        raise HTTPProblem(400, "request bodies are not accepted")
    if version == "HTTP/1.1" and "host" not in headers:
        raise HTTPProblem(400, "missing Host header")  # RFC 9112 §3.2
    split = urlsplit(target)
    try:
        pairs = parse_qsl(split.query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        raise HTTPProblem(400, "too many query parameters") from None
    query: dict[str, str] = {}
    for key, value in pairs:
        if key in query:
            raise HTTPProblem(400, f"repeated query parameter {key[:32]!r}")
        query[key] = value
    return HTTPRequest(method, split.path, query, headers)


def is_allowed_host(host_header: str | None, *, port: int, extra_hosts: frozenset[str] = frozenset()) -> bool:
    """True if `Host` names a loopback host (or one of `extra_hosts`) and, if it has a port, ours."""
    if not host_header:
        return False
    value = host_header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return False
        host, rest = value[: end + 1], value[end + 1 :]
    else:
        host, sep, port_part = value.partition(":")
        rest = sep + port_part
    if rest and (not rest.startswith(":") or not rest[1:].isdigit() or int(rest[1:]) != port):
        return False
    return is_loopback_host(host) or host.strip("[]") in extra_hosts


def is_browser_request(headers: dict[str, str]) -> bool:
    """True if the request carries fetch metadata that only browsers send."""
    return any(name in headers for name in _BROWSER_HEADERS)


def render_response(
    status: int, body: bytes, content_type: str, extra_headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """An HTTP/1.1 response that closes the connection; never cacheable, never shared cross-origin.

    Framed by `warden._http11.response_head`, the framing of `warden serve`'s own server."""
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra_headers),
    ]
    return b"".join([*response_head(status, headers, len(body), _date(), close=True), body])


_date = DateHeader()
