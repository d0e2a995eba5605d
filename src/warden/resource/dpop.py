"""DPoP proof checks at a protected resource (RFC 9449 §4.3, §7.1, §9, §11.1).

`DPoPVerifier.validate_proof` performs every check of RFC 9449 §4.3 that a
resource server owns:

1. exactly one `DPoP` header (the caller passes every value it received);
2. one well-formed compact JWS, no larger than `max_bytes`;
3. `typ` is `dpop+jwt` (§4.2, §11.5; case-insensitive per RFC 7515 §4.1.9);
4. `alg` is an asymmetric algorithm of the allow-list (`none`/HMAC are not in
   the registry at all, §11.6);
5. `jwk` is a public key (private members are refused) and the signature
   verifies with it under `alg`;
6. `jti`, `htm`, `htu`, `iat` and `ath` are present; `htm` equals the request
   method; `htu` equals the request URI after RFC 3986 §6.2.2/§6.2.3
   normalisation, ignoring query and fragment;
7. `iat` lies within `[now - max_age, now + leeway]` (§11.1);
8. `ath` is the hash of the presented access token, and the proof key's
   RFC 7638 thumbprint equals the token's `cnf.jkt` (§6.1, §7.1);
9. with a nonce source configured, `nonce` is a current server nonce (§9),
   else `UseDPoPNonce`;
10. `jti` was not seen before within the window (§11.1), checked last so a
    refused proof does not spend its `jti`.

Deliberate choices: `jti` is limited to 256 characters and stored as a hash;
`exp`/`nbf` in a proof are not required, but when present they are honoured.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
import threading
from collections.abc import Collection, Sequence
from typing import Protocol
from urllib.parse import urlsplit

from warden.core.clock import Clock, SystemClock
from warden.jose import ALGORITHMS, JoseError, jwk_thumbprint, load_public_jwk, parse_compact
from warden.protocol.errors import InvalidDPoPProof, UseDPoPNonce

__all__ = [
    "DPoPNonces",
    "DPoPVerifier",
    "MemoryReplayCache",
    "ReplayCache",
    "access_token_hash",
    "normalize_htu",
]

_MAX_JTI = 256
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _same_string(a: str, b: str) -> bool:
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


class ReplayCache(Protocol):
    """Where seen proof `jti`s are remembered; plug a shared store in for several processes."""

    def add_if_new(self, key: bytes, expires_at: float, now: float) -> bool:
        """Remember `key` until `expires_at`; False if it is already remembered."""
        ...


class MemoryReplayCache:
    """In-process `jti` store, bounded (RFC 9449 §11.1, SECURITY F21).

    Entries expire with the proof window. When `max_entries` is reached the
    expired entries are purged; if the store is still full the oldest entry is
    dropped, which can only re-admit a proof that has nearly left the window.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max = max_entries
        self._entries: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def add_if_new(self, key: bytes, expires_at: float, now: float) -> bool:
        with self._lock:
            seen = self._entries.get(key)
            if seen is not None and seen > now:
                return False
            if len(self._entries) >= self._max:
                self._entries = {k: t for k, t in self._entries.items() if t > now}
                while len(self._entries) >= self._max:
                    del self._entries[next(iter(self._entries))]
            self._entries[key] = expires_at
            return True


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
        return any(_same_string(nonce, self._make(s)) for s in (slot, slot - 1))


class DPoPVerifier:
    """Checks DPoP proofs presented with DPoP-bound access tokens (see the module docstring).

    Args:
        algorithms: allowed proof algorithms (asymmetric registry names only).
        max_age: how old a proof's `iat` may be, in seconds.
        leeway: how far in the future a proof's `iat` may be (client clock skew).
        nonces: require server nonces from this source (RFC 9449 §9).
        replay_cache: where `jti`s are remembered (default: in-process).
        max_bytes: largest proof accepted.
        clock: time source (seconds since the epoch).
    """

    def __init__(
        self,
        *,
        algorithms: Collection[str] = ("ES256", "RS256", "PS256", "EdDSA"),
        max_age: float = 60.0,
        leeway: float = 30.0,
        nonces: DPoPNonces | None = None,
        replay_cache: ReplayCache | None = None,
        max_bytes: int = 8192,
        clock: Clock | None = None,
    ) -> None:
        unknown = set(algorithms) - set(ALGORITHMS)
        if unknown or not algorithms:
            raise ValueError(f"unsupported DPoP algorithms: {sorted(unknown)}")
        self.algorithms = tuple(a for a in ALGORITHMS if a in algorithms)
        self.nonces = nonces
        self._max_age = max_age
        self._leeway = leeway
        self._replay: ReplayCache = replay_cache if replay_cache is not None else MemoryReplayCache()
        self._max_bytes = max_bytes
        self._clock: Clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"DPoPVerifier(algorithms={self.algorithms!r}, max_age={self._max_age})"

    def validate_proof(
        self,
        proofs: str | Sequence[str] | None,
        *,
        method: str,
        url: str,
        access_token: str,
        jkt: str,
    ) -> str:
        """Check the DPoP proof(s) of a request to a protected resource; return the proof's `jti`.

        Args:
            proofs: the value of the `DPoP` header, or every value if it was repeated.
            method: the request method; url: the request URI as the client addressed it.
            access_token: the token from `Authorization: DPoP`; jkt: its `cnf.jkt`.

        Raises:
            InvalidDPoPProof: a check of RFC 9449 §4.3 failed.
            UseDPoPNonce: nonces are required and the proof has none or a stale one.
        """
        proof = _single(proofs)
        try:
            parsed = parse_compact(proof, max_bytes=self._max_bytes)
        except JoseError:
            raise _invalid("malformed DPoP proof", "dpop_malformed") from None
        header = parsed.header
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ("dpop+jwt", "application/dpop+jwt"):
            raise _invalid("DPoP proof has the wrong typ", "dpop_typ")  # §4.3 check 4, §11.5
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise _invalid("DPoP proof has no jwk", "dpop_jwk")
        try:
            key = load_public_jwk(jwk)  # refuses private keys (§4.3 check 7)
            thumbprint = jwk_thumbprint(jwk)
        except ValueError:
            raise _invalid("DPoP proof key is not a usable public key", "dpop_jwk") from None
        try:
            parsed.verify(key, self.algorithms)  # §4.3 checks 5-6; alg must match the key
            claims = parsed.claims()
        except JoseError:
            raise _invalid("DPoP proof signature is invalid", "dpop_signature") from None

        jti, htm, htu, iat = claims.get("jti"), claims.get("htm"), claims.get("htu"), claims.get("iat")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI:
            raise _invalid("DPoP proof jti is missing or invalid", "dpop_jti")
        if htm != method:
            raise _invalid("DPoP proof htm does not match the request", "dpop_htm")  # §4.3 check 8
        if not isinstance(htu, str) or not _same_uri(htu, url):
            raise _invalid("DPoP proof htu does not match the request", "dpop_htu")  # §4.3 check 9
        now = self._clock.now()
        iat = _number(iat)
        if iat is None:
            raise _invalid("DPoP proof iat is missing", "dpop_iat")
        if not now - self._max_age <= iat <= now + self._leeway:
            raise _invalid("DPoP proof is too old or from the future", "dpop_iat")  # §11.1
        exp, nbf = _number(claims.get("exp", now + self._leeway)), _number(claims.get("nbf", now))
        if exp is None or nbf is None or exp + self._leeway <= now or nbf > now + self._leeway:
            raise _invalid("DPoP proof is outside its validity period", "dpop_exp")
        ath = claims.get("ath")
        if not isinstance(ath, str) or not _same_string(ath, access_token_hash(access_token)):
            raise _invalid("DPoP proof ath does not match the access token", "dpop_ath")  # §4.3 check 12
        if not _same_string(thumbprint, jkt):
            raise _invalid("DPoP proof key is not the key the token is bound to", "dpop_key_binding")
        if self.nonces is not None and not self.nonces.is_valid(claims.get("nonce")):
            raise UseDPoPNonce("a current DPoP nonce is required", reason="dpop_nonce")  # §9, §11.3
        key_id = hashlib.sha256(jti.encode("utf-8", "surrogatepass")).digest()[:16]
        if not self._replay.add_if_new(key_id, iat + self._max_age + self._leeway, now):
            raise _invalid("DPoP proof was already used", "dpop_replay")  # §11.1
        return jti


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


def _number(value: object) -> float | None:
    """A JSON number (never a bool), else None."""
    return value if type(value) is int or type(value) is float else None


def _invalid(description: str, reason: str) -> InvalidDPoPProof:
    return InvalidDPoPProof(description, reason=reason)
