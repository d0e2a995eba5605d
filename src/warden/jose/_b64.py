"""base64url without padding (RFC 7515 §2), strict on decode."""

from __future__ import annotations

import base64
import binascii
import re

_B64URL = re.compile(rb"^[A-Za-z0-9_-]*$")


def b64url_encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64url_decode(data: bytes) -> bytes:
    """Decode unpadded base64url; raise ValueError on any other alphabet or length."""
    if not _B64URL.match(data) or len(data) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except binascii.Error as exc:  # pragma: no cover - regex already filters
        raise ValueError("not base64url") from exc


def int_to_b64(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(size, "big")).decode("ascii")


def b64_to_int(value: str) -> int:
    return int.from_bytes(b64url_decode(value.encode("ascii")), "big")
