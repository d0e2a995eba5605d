"""Token Status List (draft-ietf-oauth-status-list): the list, its token, and the claim that points into it.

§4.1 the list: each referenced token has a status of `bits` bits (1, 2, 4 or 8); the status of
index i sits at bit offset i * bits of the byte array, least significant bit first, and the array is
ZLIB-compressed (RFC 1950, DEFLATE inside) and base64url-encoded without padding in `lst`.
§5.1 the Status List Token: a JWT with header `typ: statuslist+jwt` and claims `sub` (the list's
URI, which the referenced token names), `iat`, `exp`, `ttl` and `status_list: {bits, lst}`.
§6.1 the referenced token: `"status": {"status_list": {"idx": N, "uri": "..."}}`.

Everything here is pure: encoding and decoding, with the bounds that untrusted input needs (a
list is decompressed with a cap on its size, so a small `lst` cannot expand without limit).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warden.jose import b64url_decode, b64url_encode

__all__ = [
    "INVALID",
    "MEDIA_TYPE",
    "STATUSLIST_TYP",
    "SUSPENDED",
    "VALID",
    "StatusList",
    "StatusReference",
    "parse_status_reference",
    "status_list_claims",
]

VALID = 0x00
INVALID = 0x01  # revoked: never valid again (§7.1)
SUSPENDED = 0x02

STATUSLIST_TYP = "statuslist+jwt"
MEDIA_TYPE = "application/statuslist+jwt"
_BITS = (1, 2, 4, 8)


class StatusList:
    """A mutable status list of `size` entries, `bits` bits each."""

    __slots__ = ("_data", "_mask", "bits", "size")

    def __init__(self, size: int, bits: int = 1, data: bytes | bytearray | None = None) -> None:
        if bits not in _BITS:
            raise ValueError("bits must be 1, 2, 4 or 8")
        if size < 0:
            raise ValueError("size must not be negative")
        length = (size * bits + 7) // 8
        if data is not None and len(data) != length:
            raise ValueError("data does not match size and bits")
        self.bits = bits
        self.size = size
        self._mask = (1 << bits) - 1
        self._data = bytearray(data) if data is not None else bytearray(length)

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError("status index out of range")
        offset = index * self.bits
        return (self._data[offset >> 3] >> (offset & 7)) & self._mask

    def __setitem__(self, index: int, status: int) -> None:
        if not 0 <= index < self.size:
            raise IndexError("status index out of range")
        if not 0 <= status <= self._mask:
            raise ValueError(f"status does not fit in {self.bits} bits")
        offset = index * self.bits
        byte, shift = offset >> 3, offset & 7
        self._data[byte] = (self._data[byte] & ~(self._mask << shift)) | (status << shift)

    def set_range(self, start: int, count: int, status: int) -> None:
        """Set `count` entries from `start`: a whole block of a revoked client at once."""
        if count <= 0:
            return
        if start < 0 or start + count > self.size:
            raise IndexError("status range out of range")
        if status == self._mask and self.bits == 1:
            # Whole bytes in one slice assignment; the ragged ends bit by bit.
            head = min(count, (-start) % 8)
            for i in range(start, start + head):
                self[i] = status
            start, count = start + head, count - head
            whole = count // 8
            if whole:
                self._data[start >> 3:(start >> 3) + whole] = b"\xff" * whole
            for i in range(start + whole * 8, start + count):
                self[i] = status
            return
        for i in range(start, start + count):
            self[i] = status

    def to_bytes(self) -> bytes:
        return bytes(self._data)

    def encode(self) -> dict[str, Any]:
        """The JSON form (§4.2): `{"bits": ..., "lst": ...}`."""
        return {"bits": self.bits, "lst": b64url_encode(zlib.compress(bytes(self._data), 9)).decode("ascii")}

    @classmethod
    def decode(cls, value: object, *, max_bytes: int) -> StatusList:
        """Parse the JSON form from an untrusted document; ValueError for anything malformed.

        `max_bytes` caps the decompressed array, so a crafted `lst` cannot exhaust memory.
        """
        if not isinstance(value, Mapping):
            raise ValueError("status_list must be an object")
        bits, lst = value.get("bits"), value.get("lst")
        if isinstance(bits, bool) or bits not in _BITS:
            raise ValueError("status_list bits must be 1, 2, 4 or 8")
        if not isinstance(lst, str) or not lst.isascii():
            raise ValueError("status_list lst must be a base64url string")
        compressed = b64url_decode(lst.encode("ascii"))
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(compressed, max_bytes + 1)
        except zlib.error:
            raise ValueError("status_list lst is not ZLIB data") from None
        if len(data) > max_bytes or inflater.unconsumed_tail:
            raise ValueError("status list is larger than allowed")
        if not inflater.eof:
            raise ValueError("status_list lst is truncated")
        return cls(len(data) * 8 // bits, bits, data)


@dataclass(frozen=True, slots=True)
class StatusReference:
    uri: str
    idx: int


def parse_status_reference(claims: Mapping[str, Any]) -> StatusReference | None:
    """The token's `status.status_list` (§6.1); None when the token has no `status` claim.

    A `status` claim that is present but malformed raises ValueError: a token that names a status
    mechanism it does not follow must not be accepted as if it had none.
    """
    status = claims.get("status")
    if status is None:
        return None
    if not isinstance(status, Mapping):
        raise ValueError("status must be an object")
    ref = status.get("status_list")
    if ref is None:
        return None  # another status mechanism, which this library does not know (§6.1 allows several)
    if not isinstance(ref, Mapping):
        raise ValueError("status_list must be an object")
    idx, uri = ref.get("idx"), ref.get("uri")
    if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0 or idx >= 1 << 53:
        raise ValueError("status_list idx must be a non-negative integer")
    if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
        raise ValueError("status_list uri must be an http(s) URI")
    return StatusReference(uri, idx)


def status_list_claims(uri: str, iat: int, exp: int, ttl: int, status_list: StatusList) -> dict[str, Any]:
    """The claims of a Status List Token (§5.1): `sub` is the URI referenced tokens name."""
    return {"sub": uri, "iat": iat, "exp": exp, "ttl": ttl, "status_list": status_list.encode()}
