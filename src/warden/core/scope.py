"""Scope syntax (RFC 6749 §3.3): space-delimited, case-sensitive scope tokens."""

from __future__ import annotations

import re

__all__ = ["is_scope_token", "parse_scope", "render_scope"]

_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$")


def is_scope_token(value: str) -> bool:
    return bool(_SCOPE_TOKEN.match(value))


def parse_scope(value: str) -> tuple[str, ...]:
    """Parse a scope string into unique tokens in request order; ValueError if malformed."""
    tokens = value.split(" ")
    out: list[str] = []
    for token in tokens:
        if not is_scope_token(token):
            raise ValueError("malformed scope")
        if token not in out:
            out.append(token)
    return tuple(out)


def render_scope(scopes: tuple[str, ...] | list[str]) -> str:
    return " ".join(scopes)
