"""DPoP proofs (RFC 9449 §4): sender-constrained tokens for the token request and resource requests.

A `DPoPKey` holds the client's proof-of-possession key. Each proof is a fresh
JWT (`typ: dpop+jwt`, public `jwk` in the header) naming the HTTP method and
the target URI without query and fragment (§4.2), a unique `jti`, `iat` from
the local wall clock, the server-provided `nonce` when one was given (§8, §9),
and `ath`, the hash of the access token, on resource requests (§4.2, §7.1).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from warden.client._keys import SigningKey
from warden.core.algorithms import DEFAULT_ALG
from warden.jose import jwk_thumbprint

__all__ = ["DPoPKey", "access_token_hash", "htu_of"]


def htu_of(url: str) -> str:
    """The `htu` claim for `url`: the target URI without query and fragment (RFC 9449 §4.2)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


def access_token_hash(access_token: str) -> str:
    """The `ath` claim: base64url SHA-256 of the ASCII access token (RFC 9449 §4.2)."""
    digest = hashlib.sha256(access_token.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class DPoPKey:
    """A DPoP proof-of-possession key.

    Args:
        key: the signing key; `DPoPKey.generate()` makes a fresh ES256 key.
        wall_clock: seconds since the epoch for `iat` (injected in tests).
    """

    __slots__ = ("_jwk", "_wall_clock", "key", "thumbprint")

    def __init__(self, key: SigningKey, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self._wall_clock = wall_clock
        jwk = key.public_jwk()
        jwk.pop("kid", None)
        self._jwk = jwk
        self.thumbprint = jwk_thumbprint(jwk)  # RFC 9449 §6.1 `jkt`

    @classmethod
    def generate(cls, alg: str = DEFAULT_ALG, *, wall_clock: Callable[[], float] = time.time) -> DPoPKey:
        """A DPoPKey with a freshly generated private key."""
        return cls(SigningKey.generate(alg), wall_clock=wall_clock)

    @property
    def alg(self) -> str:
        return self.key.alg

    def proof(
        self, method: str, url: str, *, nonce: str | None = None, access_token: str | None = None
    ) -> str:
        """Return a DPoP proof JWT for one request (RFC 9449 §4.2)."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method.upper(),
            "htu": htu_of(url),
            "iat": int(self._wall_clock()),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        return self.key.sign({"typ": "dpop+jwt", "jwk": self._jwk}, claims)

    def __repr__(self) -> str:
        return f"DPoPKey(alg={self.alg!r}, thumbprint={self.thumbprint!r})"
