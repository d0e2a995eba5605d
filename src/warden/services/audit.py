"""Audit events: one JSON object per line, for every security-relevant action.

Callers pass named fields only; there is deliberately no way to attach a request
body, header or token, so secrets, keys and whole tokens cannot reach the log.
Writes are buffered and flushed at least every second and on close (graceful
shutdown). Several worker processes may append to one file: each flush is a
single `write` on an O_APPEND descriptor, so lines never interleave.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import datetime, timezone
from typing import IO, Any

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
             **details: str | int | float | bool | None | list[str]) -> None:
        if self._stream is None and self._fd is None:
            return
        record: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": event,
            "outcome": outcome,
        }
        fields: dict[str, object] = {"reason": reason, "actor": actor, "client_id": client_id, "source": source}
        fields.update(details)
        record.update((name, value) for name, value in fields.items() if value is not None)
        line = json.dumps(record, separators=(",", ":")) + "\n"
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


def open_audit_sink(sink: str) -> AuditSink:
    """`stdout`, `off`, or a path appended to with mode 0600."""
    if sink == "off":
        return AuditSink()
    if sink == "stdout":
        return AuditSink(stream=sys.stdout)
    if sink == "stderr":
        return AuditSink(stream=sys.stderr)
    return AuditSink(fd=os.open(sink, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
