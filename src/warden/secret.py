"""A holder for secrets whose `repr` and `str` never show the value (RFC 6819 §5.3.3; T65).

One type for every secret Warden holds: client secrets in the libraries and the agent, and
secret settings (database URL, key-encryption key) in the server.

A `Secret` is read from a constructor argument, a file (a mounted secret, one
value per file) or an environment variable. The plaintext is reachable only
through `reveal()`, so an accidental `print`, f-string, log line or traceback
shows a mask instead. Pickling is refused so the value cannot leak into a cache
or a queue by way of a containing object.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import NoReturn

from warden.errors import ConfigError

__all__ = ["SECRET_ENV_VAR", "Secret", "read_small_file"]

SECRET_ENV_VAR = "WARDEN_CLIENT_SECRET"
_MASK = "**********"
_MAX_SECRET_FILE_BYTES = 64 * 1024


def read_small_file(path: str | os.PathLike[str], what: str, limit: int) -> bytes:
    """The bytes of a file of at most `limit` bytes; ConfigError names `what` and the path, never the content."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {os.fspath(path)!r}: {exc.strerror}") from None
    if len(data) > limit:
        raise ConfigError(f"{what} {os.fspath(path)!r} is too large")
    return data


class Secret:
    """An opaque secret string; `repr`/`str` are masked, `reveal()` returns the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ConfigError("a secret must be a non-empty string")
        self._value = value

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Secret:
        """Read a secret from a file, dropping surrounding whitespace and the trailing newline.

        Raises ConfigError (naming the path, never the content) if the file is
        missing, unreadable, too large, not UTF-8 or empty.
        """
        raw = read_small_file(path, "secret file", _MAX_SECRET_FILE_BYTES)
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError(f"secret file {os.fspath(path)!r} is not UTF-8 text") from None
        if not text:
            raise ConfigError(f"secret file {os.fspath(path)!r} is empty")
        return cls(text)

    @classmethod
    def from_env(cls, name: str = SECRET_ENV_VAR, environ: Mapping[str, str] | None = None) -> Secret | None:
        """Return the secret held in environment variable `name`, or None when it is unset or empty."""
        value = (os.environ if environ is None else environ).get(name, "").strip()
        return cls(value) if value else None

    def reveal(self) -> str:
        """Return the plaintext. Call it only where the value goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode("utf-8"), other._value.encode("utf-8"))

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret objects cannot be pickled")
