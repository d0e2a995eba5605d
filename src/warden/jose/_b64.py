"""base64url without padding (RFC 7515 §2), strict on decode.

`b64url_decode` is the one decoder of untrusted base64url in Warden (JWS segments, JWK members):
it accepts exactly the canonical encoding of each byte string. Besides padding, whitespace and
characters outside the URL-safe alphabet, it refuses a last character whose unused low bits are
set (RFC 4648 §3.5): otherwise up to 16 strings decode to the same bytes, and a cache or
deny-list keyed by the token string could be walked around (issue 8 #10).
"""

from __future__ import annotations

import binascii

# '+', '/' and '=' are not part of the unpadded base64url alphabet: map them to a
# byte that the strict decoder refuses, and map '-' and '_' to the standard alphabet.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/***")
_PADDING = (b"", b"", b"==", b"=")


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The characters that may end an encoding whose length is 2 or 3 modulo 4: those whose unused low
# bits (4 and 2 of them) are zero. Indexed by the remainder; as byte values, for `in` on an int.
_CANONICAL_LAST: tuple[frozenset[int], ...] = (frozenset(), frozenset(), frozenset(_ALPHABET[::16]),
                                           frozenset(_ALPHABET[::4]))


def b64url_encode(data: bytes) -> bytes:
    # What base64.urlsafe_b64encode(data).rstrip(b"=") gives, without its two Python-level wrappers:
    # this runs twice for every token signed.
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_TO_URLSAFE)


def b64url_decode(data: bytes) -> bytes:
    """Decode unpadded, canonical base64url; raise ValueError on any other alphabet, length or
    non-zero unused bits (RFC 4648 §3.5)."""
    remainder = len(data) % 4
    if remainder == 1:
        raise ValueError("not base64url")
    if remainder and data[-1] not in _CANONICAL_LAST[remainder]:
        raise ValueError("not canonical base64url")
    try:
        return binascii.a2b_base64(data.translate(_TO_STANDARD) + _PADDING[remainder], strict_mode=True)
    except (binascii.Error, TypeError):
        raise ValueError("not base64url") from None


def int_to_b64(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(size, "big")).decode("ascii")


def b64_to_int(value: str) -> int:
    return int.from_bytes(b64url_decode(value.encode("ascii")), "big")
