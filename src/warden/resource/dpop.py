"""DPoP proof checks at a protected resource (RFC 9449 §4.3, §7.1, §9, §11.1).

The location-independent checks live in `warden.protocol.dpop`, shared with the token
endpoint; this module adds what a resource server owns (`ath`, the token binding,
nonces and `jti` replay).

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

import hashlib
import threading
from collections.abc import Collection, Sequence
from typing import Protocol

from warden.core.algorithms import VERIFY_ALGS
from warden.core.clock import Clock, SystemClock
from warden.jose import ALGORITHMS
from warden.protocol.dpop import DPoPNonces, access_token_hash, normalize_htu, same_string, verify_proof
from warden.protocol.errors import InvalidDPoPProof, UseDPoPNonce
from warden.protocol.reasons import Reason

__all__ = [
    "DPoPNonces",
    "DPoPVerifier",
    "MemoryReplayCache",
    "ReplayCache",
    "access_token_hash",
    "normalize_htu",
]


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
        algorithms: Collection[str] = VERIFY_ALGS,
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
        now = self._clock.now()
        verified = verify_proof(proofs, method=method, url=url, algorithms=self.algorithms, max_age=self._max_age,
                                leeway=self._leeway, now=now, max_bytes=self._max_bytes)
        claims, thumbprint, jti, iat = verified.claims, verified.jkt, verified.jti, verified.iat
        ath = claims.get("ath")
        if not isinstance(ath, str) or not same_string(ath, access_token_hash(access_token)):
            raise _invalid("DPoP proof ath does not match the access token", "dpop_ath")  # §4.3 check 12
        if not same_string(thumbprint, jkt):
            raise _invalid("DPoP proof key is not the key the token is bound to", "dpop_key_binding")
        if self.nonces is not None and not self.nonces.is_valid(claims.get("nonce")):
            raise UseDPoPNonce("a current DPoP nonce is required", reason="dpop_nonce")  # §9, §11.3
        key_id = hashlib.sha256(jti.encode("utf-8", "surrogatepass")).digest()[:16]
        if not self._replay.add_if_new(key_id, iat + self._max_age + self._leeway, now):
            raise _invalid("DPoP proof was already used", "dpop_replay")  # §11.1
        return jti




def _invalid(description: str, reason: Reason) -> InvalidDPoPProof:
    return InvalidDPoPProof(description, reason=reason)
