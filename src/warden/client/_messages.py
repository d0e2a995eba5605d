"""Plain values exchanged between the sans-I/O token flow and its drivers.

The flow never touches a socket: it yields `Send` (perform this HTTP request
and send back an `HTTPResponse` or a `TransportFailure`) or `Sleep` (wait this
long and send back None). The same flow is driven by threads and by asyncio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["HTTPRequest", "HTTPResponse", "Reply", "Send", "Sleep", "Step", "TransportFailure"]


@dataclass(frozen=True)
class HTTPRequest:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def __repr__(self) -> str:
        # Headers and body carry credentials (Basic, client_secret, assertions): never shown.
        return f"HTTPRequest(method={self.method!r}, url={self.url!r})"


@dataclass(frozen=True)
class HTTPResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names; repeats joined by ", "
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def __repr__(self) -> str:
        # The body of a token response is a bearer credential.
        return f"HTTPResponse(status={self.status!r}, body=<{len(self.body)} bytes>)"


@dataclass(frozen=True)
class TransportFailure:
    """The request did not produce a response (DNS, connect, TLS, timeout, reset, oversize body)."""

    description: str


@dataclass(frozen=True)
class Send:
    request: HTTPRequest


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = Send | Sleep
Reply = HTTPResponse | TransportFailure | None
