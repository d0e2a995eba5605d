"""application/x-www-form-urlencoded request bodies (RFC 6749 §3.2, Appendix B).

Parameters sent without a value are treated as omitted, and a parameter must
not be repeated (§3.2) unless the caller says it may (RFC 8707 `resource`).

Token requests rarely need percent-decoding, so a body without `%` or `+` is
split directly; that gives exactly what `urllib.parse.parse_qsl` returns for
such input, and anything else goes through `parse_qsl` itself.

A service sends the same body with every token request, so short bodies that
carry no credentials are remembered (bounded) and parsed once; a `Form` is
read-only, so sharing one between requests is safe. Bodies with `client_secret`,
`client_assertion` or `token` (introspection, revocation) are never kept.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from warden.protocol.errors import InvalidRequest

__all__ = ["Form", "parse_form"]

_MAX_FIELDS = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Form:
    """Parsed form parameters; read with `single` or `multi`.

    `derived` holds values parsers compute from the form (the token request), so a
    remembered form is interpreted once too; it lives and dies with the form.
    """

    __slots__ = ("_values", "derived")

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values
        self.derived: dict[str, object] = {}

    def single(self, name: str) -> str | None:
        values = self._values.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise InvalidRequest(f"parameter {name} is repeated", reason="duplicate_parameter")
        return values[0]

    def multi(self, name: str) -> list[str]:
        return list(self._values.get(name, ()))  # a copy: forms are shared and must not change

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def names(self) -> list[str]:
        return list(self._values)


def _pairs(text: str) -> list[tuple[str, str]]:
    """`parse_qsl(text, keep_blank_values=True, max_num_fields=64, errors="strict")`, faster when
    nothing needs decoding."""
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=False, encoding="utf-8",
                         errors="strict", max_num_fields=_MAX_FIELDS)
    if text and text.count("&") >= _MAX_FIELDS:
        raise ValueError("Max number of fields exceeded")
    pairs = []
    for part in text.split("&") if text else ():
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


_REMEMBERED: dict[tuple[bytes, int], Form] = {}
_REMEMBER_ENTRIES = 1024
_REMEMBER_BYTES = 512  # longer bodies are parsed every time
_CREDENTIALS = ("client_secret", "client_assertion", "token")  # secrets, assertions, tokens to introspect
_CREDENTIAL_MARKERS = (b"secret", b"assertion", b"token", b"wsec_", b"eyJ")  # e.g. a secret pasted into client_id


def parse_form(body: bytes, *, max_param_bytes: int = 4096) -> Form:
    """Parse a form body; InvalidRequest on non-ASCII bytes, bad UTF-8, or oversize values."""
    key = (body, max_param_bytes)
    form = _REMEMBERED.get(key)
    if form is None:
        form = _parse_form(body, max_param_bytes)
        # Only bodies that carry no credential under any name, nor anything shaped like one, are kept:
        # the remembered bytes outlive the request.
        if len(body) <= _REMEMBER_BYTES and not any(name in form for name in _CREDENTIALS) and not any(
                marker in body for marker in _CREDENTIAL_MARKERS):
            if len(_REMEMBERED) >= _REMEMBER_ENTRIES:
                _REMEMBERED.clear()
            _REMEMBERED[key] = form
    return form


def _parse_form(body: bytes, max_param_bytes: int) -> Form:
    try:
        pairs = _pairs(body.decode("ascii"))
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid form encoding", reason="bad_encoding") from None
    except ValueError:
        raise InvalidRequest("too many parameters", reason="too_many_parameters") from None
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        if len(value) > max_param_bytes or len(name) > 64:
            raise InvalidRequest(f"parameter {name[:64]} is too long", reason="parameter_too_long")
        if _CONTROL.search(value):
            raise InvalidRequest(f"parameter {name[:64]} contains control characters", reason="bad_encoding")
        if value == "":
            continue  # §3.2: sent without a value = omitted
        if name in values:
            values[name].append(value)
        else:
            values[name] = [value]
    return Form(values)
