"""How `warden serve` writes its log lines: `[log] format = "text"` or `"json"`.

With `json`, every line on stderr is one JSON object with `time`, `level`, `event` (the message),
`logger` and `trace_id` (the current OpenTelemetry trace, or null): Warden's own records, Alembic's,
the HTTP server's and anything else written to stderr (a traceback, a warning, a line from
multiprocessing), which `JsonLines` wraps line by line. Workers configure the same in their process.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import IO, Any

from warden.core.redaction import RedactingFormatter, redact
from warden.services.audit import current_trace_id

__all__ = ["JsonFormatter", "JsonLines", "configure_logging"]

_TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": _now(), "level": record.levelname.lower(), "event": record.getMessage(),
                                 "logger": record.name, "trace_id": current_trace_id()}
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, separators=(",", ":"), default=str))


class JsonLines:
    """A text stream that passes JSON lines through and wraps every other line in a JSON object."""

    def __init__(self, stream: IO[str], logger: str = "stderr") -> None:
        self._stream = stream
        self._logger = logger
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            data = self._partial + text
            *lines, self._partial = data.split("\n")
            out = [line if _is_json(line) else self._wrap(line) for line in lines if line.strip()]
            if out:
                self._stream.write("\n".join(out) + "\n")
                self._stream.flush()
        return len(text)

    def _wrap(self, line: str) -> str:
        return json.dumps({"time": _now(), "level": "info", "event": line.rstrip("\r"), "logger": self._logger,
                           "trace_id": current_trace_id()}, separators=(",", ":"))

    def flush(self) -> None:
        with self._lock:
            if self._partial.strip():
                self._stream.write((self._partial if _is_json(self._partial) else self._wrap(self._partial)) + "\n")
            self._partial = ""
            self._stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _is_json(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def configure_logging(level: str, fmt: str) -> None:
    """Set up the root logger for this process (the supervisor, or a worker)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if fmt == "json":
        if not isinstance(sys.stderr, JsonLines):
            sys.stderr = JsonLines(sys.stderr)
        if not isinstance(sys.stdout, JsonLines):
            sys.stdout = JsonLines(sys.stdout, "stdout")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(RedactingFormatter(_TEXT))
    root.addHandler(handler)
    root.setLevel(level.upper())
