"""application/x-www-form-urlencoded request bodies (RFC 6749 §3.2, Appendix B).

Parameters sent without a value are treated as omitted, and a parameter must
not be repeated (§3.2) unless the caller says it may (RFC 8707 `resource`).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from warden.protocol.errors import InvalidRequest

__all__ = ["Form", "parse_form"]

_MAX_FIELDS = 64


class Form:
    """Parsed form parameters; read with `single` or `multi`."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    def single(self, name: str) -> str | None:
        values = self._values.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise InvalidRequest(f"parameter {name} is repeated", reason="duplicate_parameter")
        return values[0]

    def multi(self, name: str) -> list[str]:
        return self._values.get(name, [])

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def names(self) -> list[str]:
        return list(self._values)


def parse_form(body: bytes, *, max_param_bytes: int = 4096) -> Form:
    """Parse a form body; InvalidRequest on non-ASCII bytes, bad UTF-8, or oversize values."""
    try:
        text = body.decode("ascii")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, encoding="utf-8",
                          errors="strict", max_num_fields=_MAX_FIELDS)
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid form encoding", reason="bad_encoding") from None
    except ValueError:
        raise InvalidRequest("too many parameters", reason="too_many_parameters") from None
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        if len(value) > max_param_bytes or len(name) > 64:
            raise InvalidRequest(f"parameter {name[:64]} is too long", reason="parameter_too_long")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise InvalidRequest(f"parameter {name[:64]} contains control characters", reason="bad_encoding")
        if value == "":
            continue  # §3.2: sent without a value = omitted
        values.setdefault(name, []).append(value)
    return Form(values)
