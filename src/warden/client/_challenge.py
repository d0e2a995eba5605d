"""Reading `WWW-Authenticate` challenges from resource servers (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9449 §7.1).

Only what the auth adapters act on is interpreted: a `Bearer` or `DPoP`
challenge with `error="invalid_token"` (fetch a fresh token once and retry) and
a `DPoP` challenge with `error="use_dpop_nonce"` (retry once with the server's
nonce, RFC 9449 §9). The parser is lenient and never raises: a malformed header
simply yields fewer challenges.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Challenge", "has_error", "parse_challenges"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_MAX_HEADER_CHARS = 8192


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower-case
    params: dict[str, str] = field(default_factory=dict)  # lower-case names


def _skip(value: str, pos: int, chars: str) -> int:
    while pos < len(value) and value[pos] in chars:
        pos += 1
    return pos


def _quoted(value: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    pos += 1  # opening quote
    while pos < len(value):
        char = value[pos]
        if char == "\\" and pos + 1 < len(value):
            out.append(value[pos + 1])
            pos += 2
            continue
        if char == '"':
            return "".join(out), pos + 1
        out.append(char)
        pos += 1
    return "".join(out), pos


def parse_challenges(values: str | Iterable[str]) -> list[Challenge]:
    """Parse one or more `WWW-Authenticate` field values into challenges."""
    text = values if isinstance(values, str) else ", ".join(values)
    text = text[:_MAX_HEADER_CHARS]
    challenges: list[Challenge] = []
    current: Challenge | None = None
    pos = 0
    while pos < len(text):
        pos = _skip(text, pos, " \t,")
        match = _TOKEN.match(text, pos)
        if match is None:
            break
        name, pos = match.group(), match.end()
        after = _skip(text, pos, " \t")
        if after < len(text) and text[after] == "=" and current is not None:
            pos = _skip(text, after + 1, " \t")
            if pos < len(text) and text[pos] == '"':
                param, pos = _quoted(text, pos)
            else:
                value_match = _TOKEN.match(text, pos)
                param = value_match.group() if value_match else ""
                pos = value_match.end() if value_match else pos
            current.params.setdefault(name.lower(), param)
            continue
        current = Challenge(name.lower())
        challenges.append(current)
        pos = after
        token68 = _TOKEN68.match(text, pos)
        if token68 is not None:
            rest = _skip(text, token68.end(), " \t")
            if rest >= len(text) or text[rest] == ",":
                pos = rest  # a token68 credential (e.g. `Negotiate abc==`): not an auth-param
    return challenges


def has_error(
    challenges: Iterable[Challenge], error: str, schemes: Iterable[str] = ("bearer", "dpop")
) -> bool:
    """True if a challenge of one of `schemes` carries `error="<error>"`."""
    wanted = {scheme.lower() for scheme in schemes}
    return any(c.scheme in wanted and c.params.get("error") == error for c in challenges)
