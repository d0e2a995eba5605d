"""Compact JWS serialization (RFC 7515 §7.1) with the checks of RFC 8725.

`parse_compact` decodes without verifying and refuses anything Warden never
accepts (JWE, `zip`, unknown `crit`, duplicate JSON members, non-finite
numbers, oversize input, and `kid`/`typ`/`cty` that are not strings or a
`jwk` that is not an object); `ParsedJWS.verify` checks the signature with a key
the *caller* chose, under an algorithm the caller allows.
`parse_protected_header` and `parse_json_object` expose the same header and
JSON rules to callers that split the token themselves (the resource-server
fast path memoizes headers).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from warden.jose._b64 import b64url_decode, b64url_encode
from warden.jose._errors import JoseError
from warden.jose.algorithms import ALGORITHMS, Algorithm, UnsupportedAlgorithm
from warden.jose.jwk import PrivateKey, PublicKey
from warden.jose.members import object_member, string_member

__all__ = [
    "MAX_TOKEN_BYTES",
    "CompactSigner",
    "DelegatedSigner",
    "JoseError",
    "ParsedJWS",
    "compact_signer",
    "encode_header",
    "parse_compact",
    "parse_json_object",
    "parse_protected_header",
    "sign_compact",
]

MAX_TOKEN_BYTES = 8192
_STRING_MEMBERS = ("kid", "typ", "cty")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JoseError(f"duplicate member {key!r}")  # RFC 7519 §4, RFC 8725 §2.6
            seen.add(key)
    return out


def _no_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")  # RFC 8259 §6


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")  # e.g. 1e400 would become an unbounded `exp`
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant,
                            parse_float=_finite_float)
# The decoder's C scanner, called directly on the hot path (decode() adds two regex
# passes for surrounding whitespace, which compact JWS payloads do not have).
_scan: Callable[[str, int], tuple[Any, int]] = getattr(_DECODER, "scan_once")  # noqa: B009


def parse_json_object(raw: bytes, what: str = "payload") -> dict[str, Any]:
    """Decode UTF-8 JSON that must be one object; raise JoseError otherwise.

    Duplicate member names, NaN/Infinity and numbers that overflow a float are
    refused (RFC 7519 §4, RFC 8259 §6, RFC 8725 §3.7).
    """
    try:
        text = raw.decode("utf-8")  # RFC 8725 §3.7
        try:
            value, end = _scan(text, 0)
        except StopIteration:  # no value at index 0, e.g. leading whitespace: full path
            end = -1
        if end != len(text):
            value = _DECODER.decode(text)
    except JoseError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise JoseError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise JoseError(f"{what} is not a JSON object")
    return value


def encode_header(header: Mapping[str, Any]) -> bytes:
    """Return the base64url header segment followed by '.', ready to prefix payloads."""
    return b64url_encode(json.dumps(header, separators=(",", ":")).encode("utf-8")) + b"."


def sign_compact(header_segment: bytes, payload: bytes, key: PrivateKey, alg: str) -> str:
    """Sign `payload` (raw JSON bytes) under a pre-encoded header segment from `encode_header`."""
    return compact_signer(header_segment, key, alg).sign(payload)


@dataclass(frozen=True, slots=True)
class CompactSigner:
    """A private key already checked against its algorithm, with its header segment: signs payloads
    exactly as `sign_compact` does, without repeating the key check for every token (an issuer
    signs thousands of tokens a second with one key). Build it with `compact_signer`."""

    header_segment: bytes
    key: PrivateKey
    algorithm: Algorithm

    def sign(self, payload: bytes) -> str:
        signing_input = self.header_segment + b64url_encode(payload)
        return (signing_input + b"." + b64url_encode(self.algorithm.sign(self.key, signing_input))).decode("ascii")


@dataclass(frozen=True, slots=True)
class DelegatedSigner:
    """Signs compact JWS with a key Warden cannot see (in an HSM, a KMS): `sign_input` takes the JWS
    signing input and returns the JWS Signature octets (RFC 7515 §5.1), e.g. R || S for ES256
    (RFC 7518 §3.4). The key's algorithm is the caller's to pin, as with `compact_signer`."""

    header_segment: bytes
    sign_input: Callable[[bytes], bytes]

    def sign(self, payload: bytes) -> str:
        signing_input = self.header_segment + b64url_encode(payload)
        return (signing_input + b"." + b64url_encode(self.sign_input(signing_input))).decode("ascii")


def compact_signer(header_segment: bytes, key: PrivateKey, alg: str) -> CompactSigner:
    """Check `key` against `alg` once (RFC 8725 §3.1); raise UnsupportedAlgorithm if they do not match."""
    algorithm = ALGORITHMS.get(alg)
    if algorithm is None or not algorithm.key_matches(key):
        raise UnsupportedAlgorithm(f"key does not match {alg}")
    return CompactSigner(header_segment, key, algorithm)


@dataclass(frozen=True)
class ParsedJWS:
    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header.get("alg"))

    @property
    def kid(self) -> str | None:
        """The `kid` header member (RFC 7515 §4.1.4): a string, or None when absent."""
        return string_member(self.header, "kid")

    @property
    def typ(self) -> str | None:
        """The `typ` header member (RFC 7515 §4.1.9): a string, or None when absent."""
        return string_member(self.header, "typ")

    def claims(self) -> dict[str, Any]:
        return parse_json_object(self.payload, "payload")

    def verify(self, key: PublicKey, allowed_algs: Collection[str]) -> None:
        """Raise JoseError unless the signature verifies with `key` under an allowed algorithm.

        The algorithm must be in `allowed_algs` *and* match the key type (RFC 8725 §3.1).
        """
        alg = self.alg
        if alg not in allowed_algs:
            raise JoseError(f"algorithm {alg!r} not allowed")
        algorithm = ALGORITHMS.get(alg)
        if algorithm is None or not algorithm.key_matches(key):
            raise JoseError("algorithm does not match key")
        if not algorithm.verify(key, self.signing_input, self.signature):
            raise JoseError("signature verification failed")


def parse_compact(
    token: str | bytes,
    *,
    max_bytes: int = MAX_TOKEN_BYTES,
    understood_crit: Collection[str] = (),
) -> ParsedJWS:
    """Split and decode a compact JWS; raise JoseError on anything malformed or refused."""
    raw = token.encode("ascii", "replace") if isinstance(token, str) else token
    if len(raw) > max_bytes:
        raise JoseError("token too large")  # capped before any decoding (T39)
    parts = raw.split(b".")
    if len(parts) == 5:
        raise JoseError("encrypted tokens (JWE) are not accepted")
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise JoseError("not a compact JWS")
    try:
        header_raw = b64url_decode(parts[0])
        payload = b64url_decode(parts[1])
        signature = b64url_decode(parts[2])
    except ValueError:
        raise JoseError("malformed base64url") from None
    header = _check_header(parse_json_object(header_raw, "header"), understood_crit)
    return ParsedJWS(header, payload, parts[0] + b"." + parts[1], signature)


def parse_protected_header(segment: bytes, *, understood_crit: Collection[str] = ()) -> dict[str, Any]:
    """Decode one base64url JWS header segment and apply the checks of `parse_compact`.

    Raise JoseError if it is malformed, names an algorithm outside the registry
    (so `none` and HMAC), asks for compression or encryption, carries an
    unknown `crit` (RFC 7515 §4.1.11) or `b64: false` (RFC 7797).
    """
    if len(segment) > MAX_TOKEN_BYTES:
        raise JoseError("header too large")
    try:
        raw = b64url_decode(segment)
    except ValueError:
        raise JoseError("malformed base64url") from None
    return _check_header(parse_json_object(raw, "header"), understood_crit)


def _check_header(header: dict[str, Any], understood_crit: Collection[str]) -> dict[str, Any]:
    alg = header.get("alg")
    if type(alg) is not str or alg not in ALGORITHMS:
        raise JoseError("unsupported or missing alg")  # covers none and HS*
    # RFC 7515 §4.1.4, §4.1.9-10: kid, typ and cty are strings; §4.1.3: jwk is an object. Checked
    # here, once, so no caller meets a list where it expects a string (issue 8 #5).
    for name in _STRING_MEMBERS:
        string_member(header, name)
    object_member(header, "jwk")
    if "zip" in header:
        raise JoseError("compressed tokens are not accepted")
    if "enc" in header:
        raise JoseError("encrypted tokens (JWE) are not accepted")
    if "crit" in header:
        crit = header["crit"]
        # RFC 7515 §4.1.11: an empty list, non-strings or unknown names make the JWS invalid.
        if (not isinstance(crit, list) or not crit or
                not all(isinstance(c, str) and c in understood_crit and c in header for c in crit)):
            raise JoseError("unsupported crit header")
    if header.get("b64") is False:
        raise JoseError("unencoded payloads are not accepted")
    return header
