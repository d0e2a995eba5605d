"""DPoP proofs (RFC 9449 §4.2, §4.3, §9, §11): the checks shared by the token endpoint and
resource servers.

`verify_proof` performs every §4.3 check that does not depend on where the proof is
presented: one header (1), one well-formed JWS of bounded size (2), `typ`
`dpop+jwt` (4, §11.5), an allow-listed asymmetric `alg` (5, §11.6), a public `jwk`
that verifies the signature (6, 7), `htm` and `htu` matching the request after
RFC 3986 §6.2.2/§6.2.3 normalisation with query and fragment ignored (8, 9), and an
`iat` inside the acceptance window (11, §11.1). The caller adds what is its own:
`ath` and the token binding at a resource (12), nonces (10, §9) and `jti` replay.
Header members and claims are read with the typed accessors of `warden.jose.members`, so a
value of any JSON type is a check that fails (`invalid_dpop_proof`), never another exception.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from warden.core.algorithms import VERIFY_ALGS
from warden.core.clock import Clock, SystemClock
from warden.jose import (
    JoseError,
    MemberError,
    jwk_thumbprint,
    load_public_jwk,
    numeric_date,
    parse_compact,
    string_member,
)
from warden.protocol.errors import InvalidDPoPProof
from warden.protocol.reasons import Reason

__all__ = [
    "DPOP_ALGS",
    "DPoPNonces",
    "VerifiedProof",
    "access_token_hash",
    "normalize_htu",
    "same_string",
    "verify_proof",
]

DPOP_ALGS = VERIFY_ALGS
MAX_JTI = 256
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_T = TypeVar("_T")


@dataclass(frozen=True)
class VerifiedProof:
    jti: str
    iat: float
    jkt: str  # RFC 7638 thumbprint of the proof key
    claims: dict[str, Any]


def same_string(a: str, b: str) -> bool:
    """Constant-time equality for strings that may hold any code point (unlike `hmac.compare_digest`)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def access_token_hash(access_token: str) -> str:
    """The `ath` value of RFC 9449 §4.2: base64url(SHA-256(ASCII(access_token)))."""
    digest = hashlib.sha256(access_token.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, for a path that starts with "/"."""
    segments = path.split("/")
    output: list[str] = []
    for segment in segments:
        if segment == "..":
            if len(output) > 1:
                output.pop()
        elif segment != ".":
            output.append(segment)
    if segments[-1] in (".", ".."):
        output.append("")
    return "/".join(output) or "/"


def _normalize_percent(text: str) -> str:
    """RFC 3986 §6.2.2.1-2: upper-case escapes, decode escaped unreserved characters."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _PERCENT.sub(fix, text)


def normalize_htu(uri: str) -> str:
    """Normalise an HTTP(S) URI for the `htu` comparison of RFC 9449 §4.3.

    Applies RFC 3986 §6.2.2 (case, percent-encoding, dot segments) and §6.2.3
    (default port, empty path) and drops query and fragment.

    Raises:
        ValueError: not an absolute http(s) URI, or one with user information.
    """
    parts = urlsplit(uri.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        raise ValueError("htu must be an absolute http(s) URI")
    host = parts.hostname.lower()  # urlsplit strips IPv6 brackets
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # ValueError for a non-numeric or out-of-range port
    authority = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _remove_dot_segments(_normalize_percent(parts.path)) if parts.path else "/"
    return f"{scheme}://{authority}{path}"


class DPoPNonces:
    """Server-provided DPoP nonces (RFC 9449 §9), stateless and unpredictable.

    A nonce is a time slot authenticated with HMAC-SHA-256 under `secret`; it is
    accepted during its slot and the next one, so its lifetime is between
    `lifetime` and twice that. Processes that share `secret` accept each other's
    nonces. Without a secret a random one is generated (single process only).
    """

    def __init__(self, secret: bytes | None = None, *, lifetime: float = 300.0,
                 clock: Clock | None = None) -> None:
        if secret is not None and len(secret) < 32:
            raise ValueError("the nonce secret must be at least 32 bytes")
        self._secret = secret or secrets.token_bytes(32)
        self._lifetime = lifetime
        self._clock: Clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"DPoPNonces(lifetime={self._lifetime})"

    def _make(self, slot: int) -> str:
        packed = struct.pack(">Q", slot)
        mac = hmac.new(self._secret, packed, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(packed + mac).rstrip(b"=").decode("ascii")

    def current(self) -> str:
        """The nonce to send in `DPoP-Nonce` now."""
        return self._make(int(self._clock.now() // self._lifetime))

    def is_valid(self, nonce: object) -> bool:
        """True if `nonce` was issued by this source (same secret) and is still current."""
        if not isinstance(nonce, str) or len(nonce) > 64:
            return False
        slot = int(self._clock.now() // self._lifetime)
        return any(same_string(nonce, self._make(s)) for s in (slot, slot - 1))



def verify_proof(proofs: str | Sequence[str] | None, *, method: str, url: str, algorithms: Collection[str],
                 max_age: float, leeway: float, now: float, max_bytes: int = 8192) -> VerifiedProof:
    """The location-independent checks of RFC 9449 §4.3; raise InvalidDPoPProof on the first failure."""
    proof = _single(proofs)
    try:
        parsed = parse_compact(proof, max_bytes=max_bytes)
    except MemberError as exc:  # typ, kid or cty not a string, jwk not an object
        reason: Reason = "dpop_typ" if exc.member == "typ" else "dpop_jwk" if exc.member == "jwk" else "dpop_malformed"
        raise _invalid("malformed DPoP proof", reason) from None
    except JoseError:
        raise _invalid("malformed DPoP proof", "dpop_malformed") from None
    typ = parsed.typ  # a string or None: parse_compact refuses other types, and an object as jwk
    if typ is None or typ.lower() not in ("dpop+jwt", "application/dpop+jwt"):
        raise _invalid("DPoP proof has the wrong typ", "dpop_typ")  # §4.3 check 4, §11.5
    jwk = parsed.header.get("jwk")
    if not isinstance(jwk, dict):
        raise _invalid("DPoP proof has no jwk", "dpop_jwk")
    try:
        key = load_public_jwk(jwk)  # refuses private keys (§4.3 check 7)
        thumbprint = jwk_thumbprint(jwk)
    except ValueError:
        raise _invalid("DPoP proof key is not a usable public key", "dpop_jwk") from None
    try:
        parsed.verify(key, algorithms)  # §4.3 checks 5-6; alg must match the key
        claims = parsed.claims()
    except JoseError:
        raise _invalid("DPoP proof signature is invalid", "dpop_signature") from None
    jti = _claim(string_member, claims, "jti", "dpop_jti")
    if jti is None or not jti or len(jti) > MAX_JTI:
        raise _invalid("DPoP proof jti is missing or invalid", "dpop_jti")
    if _claim(string_member, claims, "htm", "dpop_htm") != method:
        raise _invalid("DPoP proof htm does not match the request", "dpop_htm")  # §4.3 check 8
    htu = _claim(string_member, claims, "htu", "dpop_htu")
    if htu is None or not _same_uri(htu, url):
        raise _invalid("DPoP proof htu does not match the request", "dpop_htu")  # §4.3 check 9
    issued = _claim(numeric_date, claims, "iat", "dpop_iat")
    if issued is None:
        raise _invalid("DPoP proof iat is missing", "dpop_iat")
    if not now - max_age <= issued <= now + leeway:
        raise _invalid("DPoP proof is too old or from the future", "dpop_iat")  # §11.1
    exp, nbf = _claim(numeric_date, claims, "exp", "dpop_exp"), _claim(numeric_date, claims, "nbf", "dpop_exp")
    if (exp is not None and exp + leeway <= now) or (nbf is not None and nbf > now + leeway):
        raise _invalid("DPoP proof is outside its validity period", "dpop_exp")
    return VerifiedProof(jti, issued, thumbprint, claims)


def _single(proofs: str | Sequence[str] | None) -> str:
    if proofs is None:
        raise _invalid("DPoP proof required", "dpop_missing")
    if isinstance(proofs, str):
        return proofs
    if len(proofs) != 1:
        # §4.3 check 1: not more than one DPoP header field.
        raise _invalid("DPoP proof required" if not proofs else "more than one DPoP proof", "dpop_count")
    return proofs[0]


def _same_uri(htu: str, url: str) -> bool:
    try:
        return normalize_htu(htu) == normalize_htu(url)
    except ValueError:
        return False


def _claim(read: Callable[[Mapping[str, Any], str], _T], claims: Mapping[str, Any], name: str, reason: Reason) -> _T:
    """`read(claims, name)`, a value of the wrong type or range being an invalid proof."""
    try:
        return read(claims, name)
    except MemberError:
        raise _invalid(f"DPoP proof {name} is invalid", reason) from None


def _invalid(description: str, reason: Reason) -> InvalidDPoPProof:
    return InvalidDPoPProof(description, reason=reason)
