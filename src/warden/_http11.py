"""HTTP/1.1 response framing (RFC 9112 §4, §6.2, §9.6; RFC 9110 §6.6.1), shared by Warden's two servers.

`warden serve` (`server/h1.py`, requests parsed by httptools) and the token agent
(`agent/_http.py`, which runs on the base install, without httptools) write every
answer's head here: one status line cache, one Content-Length and Date rule, one
Connection rule. Standard library only, so both rings can use it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus

__all__ = ["DateHeader", "response_head", "status_line"]

_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """`HTTP/1.1 <status> <phrase>` and CRLF (an unregistered status gets an empty phrase)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")
    return line


class DateHeader:
    """The `date:` header line (RFC 9110 §6.6.1), formatted at most once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def __call__(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._line = b"date: " + formatdate(second, usegmt=True).encode("ascii") + b"\r\n"
        return self._line


def response_head(status: int, headers: Iterable[tuple[bytes, bytes]], length: int, date: bytes, *,
                  close: bool, http10: bool = False) -> list[bytes]:
    """The pieces of a response head, ending in the empty line; the caller appends the body (or not, for HEAD).

    `length` is the body's Content-Length (every answer has one, so the connection can be reused);
    `close` announces that the connection ends after this answer; an HTTP/1.0 client that asked to
    keep it open is told it stays open (RFC 9112 §9.3).
    """
    head = [status_line(status)]
    for name, value in headers:
        head += (name, b": ", value, b"\r\n")
    head += (b"content-length: ", str(length).encode("ascii"), b"\r\n", date)
    if close:
        head.append(b"connection: close\r\n")
    elif http10:
        head.append(b"connection: keep-alive\r\n")
    head.append(b"\r\n")
    return head
