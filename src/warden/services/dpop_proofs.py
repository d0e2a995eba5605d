"""The DPoP proof of a token request (RFC 9449 §4.3, §8, §11.1), as a step.

Shared checks live in `warden.protocol.dpop`; here the server's policy is added: whether nonces
are required, and single use of each proof's `jti` across every process on the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from warden.protocol.dpop import DPoPNonces, verify_proof
from warden.protocol.errors import InvalidDPoPProof, UseDPoPNonce
from warden.services.call import Call
from warden.settings import DPoPSettings

__all__ = ["DPoPProofs"]


class DPoPProofs:
    def __init__(self, settings: DPoPSettings, nonces: DPoPNonces, algorithms: tuple[str, ...],
                 use_once: Callable[[str, float], Awaitable[bool]]) -> None:
        self._settings = settings
        self._nonces = nonces
        self._algorithms = algorithms
        self._use_once = use_once

    def verify_proof(self, call: Call) -> Awaitable[None] | None:
        """A proof binds the token to its key. Without a DPoP header there is nothing to check, so
        the common case returns at once rather than starting a coroutine."""
        if call.dpop is None or not self._settings.enabled:
            return None
        return self._verify(call)

    async def _verify(self, call: Call) -> None:
        dpop, settings = call.dpop, self._settings
        assert dpop is not None
        if dpop.repeated:
            raise InvalidDPoPProof("more than one DPoP header", reason="dpop_count")  # §4.3 check 1
        proof = verify_proof(dpop.proof, method=dpop.method, url=dpop.url, algorithms=self._algorithms,
                             max_age=settings.max_age, leeway=settings.leeway, now=call.now)
        if settings.require_nonce and not self._nonces.is_valid(proof.claims.get("nonce")):
            raise UseDPoPNonce("a current DPoP nonce is required", reason="dpop_nonce", nonce=self._nonces.current())
        key = "dpop:" + hashlib.sha256(proof.jti.encode("utf-8", "surrogatepass")).hexdigest()
        if not await self._use_once(key, proof.iat + settings.max_age + settings.leeway):
            raise InvalidDPoPProof("DPoP proof was already used", reason="dpop_replay")
        call.proof = proof

    def nonce_to_send(self) -> str | None:
        """The nonce a successful token response carries (RFC 9449 §8), when nonces are required."""
        return self._nonces.current() if self._settings.require_nonce else None
