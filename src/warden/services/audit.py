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

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring_ascii as _quote
from typing import IO

from warden.core.redaction import redact

__all__ = ["GENESIS", "AuditSink", "current_trace_id", "open_audit_sink", "verify_chain"]

GENESIS = "0" * 64  # `prev` of the first event of a chain


class AuditSink:
    """`chain`: each event carries `prev`, the SHA-256 of the line before it (tamper evidence).
    On a file, each flush holds an exclusive lock and reads the file's last line, so several
    processes appending to one file keep one chain. `log_fields`: add `level` and `trace_id`, so
    the lines match the JSON log lines of `warden serve` when both go to one stream."""

    def __init__(self, stream: IO[str] | None = None, fd: int | None = None, *, chain: bool = False,
                 log_fields: bool = False) -> None:
        self._stream = stream
        self._fd = fd
        self._chain = chain
        self._log_fields = log_fields
        self._prev = GENESIS
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
        if self._log_fields:
            trace_id = current_trace_id()
            parts += (',"level":"info","trace_id":', _quote(trace_id) if trace_id else "null")
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
        if self._chain:
            self._flush_chained()
            return
        data = "".join(self._buffer)
        self._buffer.clear()
        if self._fd is not None:
            os.write(self._fd, data.encode("utf-8"))
        elif self._stream is not None:
            self._stream.write(data)
            self._stream.flush()

    def _flush_chained(self) -> None:
        lines, self._buffer = self._buffer, []
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                prev = _last_line_hash(self._fd)
                os.write(self._fd, _link(lines, prev)[0].encode("utf-8"))
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        elif self._stream is not None:
            data, self._prev = _link(lines, self._prev)
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


def open_audit_sink(sink: str, *, chain: bool = False, log_fields: bool = False) -> AuditSink:
    """`stdout`, `off`, or a path appended to with mode 0600."""
    if sink == "off":
        return AuditSink()
    if sink == "stdout":
        return AuditSink(stream=sys.stdout, chain=chain, log_fields=log_fields)
    if sink == "stderr":
        return AuditSink(stream=sys.stderr, chain=chain, log_fields=log_fields)
    flags = os.O_RDWR if chain else os.O_WRONLY  # a chain reads the last line back
    return AuditSink(fd=os.open(sink, flags | os.O_APPEND | os.O_CREAT, 0o600), chain=chain, log_fields=log_fields)


def current_trace_id() -> str | None:
    """The W3C trace id of the current OpenTelemetry span, if tracing is in use (no import otherwise)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def _hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def _link(lines: list[str], prev: str) -> tuple[str, str]:
    """The lines with `prev` appended to each (before the closing brace), and the last line's hash."""
    out = []
    for line in lines:
        linked = f'{line[:-2]},"prev":"{prev}"}}'
        prev = _hash(linked)
        out.append(linked + "\n")
    return "".join(out), prev


def _last_line_hash(fd: int) -> str:
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return GENESIS
    chunk = b""
    position = size
    while position > 0:
        step = min(65536, position)
        position -= step
        chunk = os.pread(fd, step, position) + chunk
        body = chunk.rstrip(b"\n")
        cut = body.rfind(b"\n")
        if cut >= 0 or position == 0:
            return hashlib.sha256(body[cut + 1:]).hexdigest()
    return GENESIS  # pragma: no cover


def verify_chain(lines: Iterable[str]) -> tuple[int, int | None, str]:
    """Check a chained audit log; return (events checked, first broken line number or None, why)."""
    prev: str | None = None
    count = 0
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        if not line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            return count, number, "not a JSON object"
        if not isinstance(event, dict) or not isinstance(event.get("prev"), str):
            return count, number, "no prev field (not a chained event)"
        if not line.endswith(f',"prev":"{event["prev"]}"}}'):
            return count, number, "prev is not the last field"
        if prev is not None and event["prev"] != prev:
            return count, number, "prev does not match the hash of the line before"
        prev = _hash(line)
        count += 1
    return count, None, ""
