"""base64url without padding (RFC 7515 §2), strict on decode."""

from __future__ import annotations

import binascii

# '+', '/' and '=' are not part of the unpadded base64url alphabet: map them to a
# byte that the strict decoder refuses, and map '-' and '_' to the standard alphabet.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/***")
_PADDING = (b"", b"", b"==", b"=")


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url_encode(data: bytes) -> bytes:
    # What base64.urlsafe_b64encode(data).rstrip(b"=") gives, without its two Python-level wrappers:
    # this runs twice for every token signed.
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_TO_URLSAFE)


def b64url_decode(data: bytes) -> bytes:
    """Decode unpadded base64url; raise ValueError on any other alphabet or length."""
    remainder = len(data) % 4
    if remainder == 1:
        raise ValueError("not base64url")
    try:
        return binascii.a2b_base64(data.translate(_TO_STANDARD) + _PADDING[remainder], strict_mode=True)
    except (binascii.Error, TypeError):
        raise ValueError("not base64url") from None


def int_to_b64(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(size, "big")).decode("ascii")


def b64_to_int(value: str) -> int:
    return int.from_bytes(b64url_decode(value.encode("ascii")), "big")
