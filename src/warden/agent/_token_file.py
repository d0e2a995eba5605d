"""The token file sink: the current access token in a file only its owner can read (T67).

Each write goes to a new temporary file in the same directory, created with
mode 0600, flushed to disk and renamed over the target with `os.replace`, so
readers see either the old token or the new one, never a partial file and
never a moment of wider permissions.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["TOKEN_FILE_MODE", "remove_token_file", "write_token_file"]

TOKEN_FILE_MODE = 0o600


def write_token_file(path: Path, token: str) -> None:
    """Atomically replace `path` with `token` (no trailing newline), mode 0600."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            os.fchmod(handle.fileno(), TOKEN_FILE_MODE)  # mkstemp uses 0600 already; this states the contract
            handle.write(token)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def remove_token_file(path: Path) -> None:
    """Remove the token file if present (used once the token in it has expired: fail closed, F16)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
