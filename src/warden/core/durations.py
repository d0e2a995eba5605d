"""Human durations for configuration and the CLI: `90s`, `15m`, `24h`, `7d`, or plain seconds."""

from __future__ import annotations

import re

__all__ = ["MAX_TTL", "MIN_TTL", "parse_duration", "render_duration"]

MIN_TTL = 60  # the bounds of any access token lifetime: an API's, or a client's cap
MAX_TTL = 24 * 3600

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d{1,9})\s*([smhdw]?)\s*$")


def parse_duration(text: str | int) -> int:
    """Return seconds; raise ValueError naming the expected form."""
    if isinstance(text, bool):
        raise ValueError("expected a duration such as 90s, 15m, 24h or 7d")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("duration must not be negative")
        return text
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"invalid duration {text!r}: expected a number with unit s, m, h, d or w (e.g. 15m)")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def render_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
