"""Typed reads of JOSE header members and JWT claims (RFC 7515 §4, RFC 7519 §2 and §4.1).

A header or claims set is untrusted JSON: any member may hold any JSON type (null, a bool, an
integer of any size, a float, a string, an array, an object). Every JOSE entry point reads the
members it uses through these accessors, so a value of the wrong type or out of range is one
`JoseError` naming the member (its `member` attribute), which the caller turns into its own error
(`invalid_client`, `invalid_dpop_proof`, `InvalidToken`), never a `TypeError` from hashing a list
or an `OverflowError` from an integer too large for a float.

JSON `null` reads as absent (None), as `dict.get` would. A NumericDate (RFC 7519 §2) is an
integer or a float, never a bool, between 0 and `MAX_NUMERIC_DATE` (the last second of year
9999): inside that range every value is exact as a float and converts to a `datetime`; the JSON
parser of `warden.jose` already refuses NaN and infinities.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from warden.jose._errors import JoseError

__all__ = [
    "MAX_NUMERIC_DATE",
    "MemberError",
    "numeric_date",
    "object_member",
    "string_member",
    "string_or_list_member",
]

MAX_NUMERIC_DATE = 253_402_300_799  # 9999-12-31T23:59:59Z


class MemberError(JoseError):
    """A header member or claim of the wrong JSON type or out of range; `member` names it."""

    def __init__(self, member: str, expected: str) -> None:
        super().__init__(f"{member} must be {expected}")
        self.member = member


def string_member(members: Mapping[str, Any], name: str) -> str | None:
    """The member as a string; None when absent or null; MemberError for any other type."""
    value = members.get(name)
    if value is None or type(value) is str:
        return value
    raise MemberError(name, "a string")


def string_or_list_member(members: Mapping[str, Any], name: str) -> tuple[str, ...] | None:
    """A string or an array of strings (as `aud`, RFC 7519 §4.1.3) as a tuple; None when absent or null."""
    value = members.get(name)
    if value is None:
        return None
    if type(value) is str:
        return (value,)
    if type(value) is list and all(type(item) is str for item in value):
        return tuple(value)
    raise MemberError(name, "a string or an array of strings")


def object_member(members: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The member as a JSON object (as `jwk` or `cnf`); None when absent or null."""
    value = members.get(name)
    if value is None or type(value) is dict:
        return value
    raise MemberError(name, "an object")


def numeric_date(members: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate (RFC 7519 §2) as a float; None when absent or null.

    MemberError for a bool, a string or any other type, and for a number outside
    0..MAX_NUMERIC_DATE (so `10**400` and `-1e300` are refused, not overflowed).
    """
    value = members.get(name)
    if value is None:
        return None
    kind = type(value)
    if (kind is int or kind is float) and 0 <= value <= MAX_NUMERIC_DATE:
        return float(value)
    raise MemberError(name, "a NumericDate")
