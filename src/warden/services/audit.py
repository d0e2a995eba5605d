"""Audit events: one JSON object per line, for every security-relevant action.

Callers pass named fields only; there is deliberately no way to attach a request
body, header or token, and every value goes through `warden.core.redaction.redact`,
so a secret sent in the wrong field (say `client_id`) is still hidden.
Writes are buffered and flushed at least every second and on close (graceful
shutdown). Several worker processes may append to one file: each flush is a
single `write` on an O_APPEND descriptor, so lines never interleave.

An event is written on every token issued, so the line is assembled from
fragments rather than through a dict and `json.dumps`: strings go through the
same C escaper `json.dumps` uses, so the bytes are exactly what it would
produce, and the timestamp is formatted once per millisecond.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _quote
from typing import IO

from warden.core.redaction import redact

__all__ = ["AuditSink", "open_audit_sink"]


class AuditSink:
    def __init__(self, stream: IO[str] | None = None, fd: int | None = None) -> None:
        self._stream = stream
        self._fd = fd
        self._buffer: list[str] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def emit(self, event: str, *, outcome: str = "success", reason: str | None = None,
             actor: str | None = None, client_id: str | None = None, source: str | None = None,
             **details: str | float | bool | list[str] | None) -> None:
        """Queue one event; fields that are None are left out. `time` is set here, never by callers."""
        if self._stream is None and self._fd is None:
            return
        if "time" in details:
            raise TypeError("the audit sink sets the time of an event")
        parts = ['{"time":"', _timestamp(), '","event":', _quote(event), ',"outcome":', _quote(outcome)]
        if reason is not None:
            parts += (',"reason":', _quote(reason))
        # Values may come from the request (a secret pasted into client_id): every string goes through `redact`.
        if actor is not None:
            parts += (',"actor":', _quote(redact(actor)))
        if client_id is not None:
            parts += (',"client_id":', _quote(redact(client_id)))
        if source is not None:
            parts += (',"source":', _quote(redact(source)))
        for name, detail in details.items():
            if detail is not None:
                parts += (_KEYS.get(name) or _key(name),
                          _quote(redact(detail)) if detail.__class__ is str else _json(detail))
        parts.append("}\n")
        line = "".join(parts)
        with self._lock:
            self._buffer.append(line)
            if len(self._buffer) >= 256 or time.monotonic() - self._last_flush >= 1.0:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        data = "".join(self._buffer)
        self._buffer.clear()
        if self._fd is not None:
            os.write(self._fd, data.encode("utf-8"))
        elif self._stream is not None:
            self._stream.write(data)
            self._stream.flush()

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_KEYS: dict[str, str] = {}


def _key(name: str) -> str:
    """`,"name":`, escaped like json.dumps escapes keys; field names come from code, so this stays small."""
    fragment = _KEYS.get(name)
    if fragment is None:
        fragment = _KEYS[name] = "," + _quote(name) + ":"
    return fragment


def _json(value: object) -> str:
    if isinstance(value, str):
        return _quote(redact(value))
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                return redact(json.dumps(value, separators=(",", ":")))
        return "[" + ",".join(_quote(redact(item)) for item in value) + "]"
    return redact(json.dumps(value, separators=(",", ":")))


class _Timestamps:
    """RFC 3339 UTC time with milliseconds, formatted once per millisecond."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._second = -1
        self._millis = -1
        self._prefix = ""
        self._text = ""

    def __call__(self) -> str:
        millis = int(self._now() * 1000)
        if millis != self._millis:
            second, fraction = divmod(millis, 1000)
            if second != self._second:
                self._second = second
                self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._millis = millis
            self._text = f"{self._prefix}.{fraction:03d}Z"
        return self._text


_timestamp = _Timestamps()


def open_audit_sink(sink: str) -> AuditSink:
    """`stdout`, `off`, or a path appended to with mode 0600."""
    if sink == "off":
        return AuditSink()
    if sink == "stdout":
        return AuditSink(stream=sys.stdout)
    if sink == "stderr":
        return AuditSink(stream=sys.stderr)
    return AuditSink(fd=os.open(sink, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
