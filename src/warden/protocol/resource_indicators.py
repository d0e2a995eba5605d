"""Resource indicators (RFC 8707 §2): `resource` is an absolute URI without a fragment.

Warden also accepts `audience` as an alias (many client libraries send it).
Validation is a pure function of the string and callers repeat the same few
resources, so accepted values are remembered (bounded); refusals never are.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from warden.protocol.errors import InvalidTarget
from warden.protocol.form import Form

__all__ = ["parse_resources"]

_MAX_RESOURCES = 10


@lru_cache(maxsize=256)
def _validate(value: str) -> None:
    try:
        parts = urlsplit(value)
    except ValueError:
        raise InvalidTarget("resource is not a valid URI", reason="malformed_resource") from None
    if not parts.scheme or "#" in value or any(c.isspace() for c in value):
        raise InvalidTarget("resource must be an absolute URI without a fragment", reason="malformed_resource")


def parse_resources(form: Form) -> tuple[str, ...] | None:
    values = form.multi("resource") + form.multi("audience")
    if not values:
        return None
    unique: list[str] = []
    for value in values:
        _validate(value)
        if value not in unique:
            unique.append(value)
    if len(unique) > _MAX_RESOURCES:
        raise InvalidTarget("too many resources requested", reason="too_many_resources")
    return tuple(unique)
