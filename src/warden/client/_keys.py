"""Private keys for JWT client authentication (RFC 7523) and DPoP (RFC 9449), pinned to one algorithm.

Algorithms come from the `warden.jose` registry (ES256, RS256, PS256, EdDSA);
each key is bound to exactly one of them (RFC 8725 §3.1). `repr` names the
algorithm and key id only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from warden.core.algorithms import DEFAULT_ALG
from warden.errors import ConfigError
from warden.jose import ALGORITHMS, PrivateKey, encode_header, generate_private_key, public_jwk, sign_compact
from warden.secret import Secret, read_small_file

__all__ = ["SigningKey", "default_alg"]

_MAX_KEY_FILE_BYTES = 64 * 1024


def default_alg(key: object) -> str:
    """The algorithm used for `key` when none is named: ES256, RS256 or EdDSA by key type."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise ConfigError("unsupported private key type: expected EC P-256, RSA (2048+) or Ed25519")


class SigningKey:
    """A private key, the one JWS algorithm it signs with, and an optional `kid`."""

    __slots__ = ("alg", "key_id", "private_key")

    def __init__(self, private_key: PrivateKey, alg: str | None = None, key_id: str | None = None) -> None:
        alg = alg or default_alg(private_key)
        algorithm = ALGORITHMS.get(alg)
        if algorithm is None:
            raise ConfigError(
                f"unsupported signing algorithm {alg!r}: expected one of {', '.join(ALGORITHMS)}"
            )
        if not algorithm.key_matches(private_key):
            raise ConfigError(f"the private key does not fit algorithm {alg}")
        self.private_key = private_key
        self.alg = alg
        self.key_id = key_id

    @classmethod
    def generate(cls, alg: str = DEFAULT_ALG, key_id: str | None = None) -> SigningKey:
        """Generate a fresh key for `alg`."""
        if alg not in ALGORITHMS:
            raise ConfigError(f"unsupported signing algorithm {alg!r}")
        return cls(generate_private_key(alg), alg, key_id)

    @classmethod
    def from_pem_file(
        cls,
        path: str | os.PathLike[str],
        alg: str | None = None,
        key_id: str | None = None,
        password: Secret | None = None,
    ) -> SigningKey:
        """Load a PEM (PKCS#8 or traditional) private key; ConfigError names the path, never the content."""
        data = read_small_file(path, "private key file", _MAX_KEY_FILE_BYTES)
        try:
            key: Any = serialization.load_pem_private_key(
                data, password=password.reveal().encode("utf-8") if password else None
            )
        except (ValueError, TypeError):
            raise ConfigError(
                f"private key file {os.fspath(path)!r} is not a usable PEM private key"
            ) from None
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
            raise ConfigError(f"private key file {os.fspath(path)!r} holds an unsupported key type")
        return cls(key, alg, key_id)

    def public_jwk(self) -> dict[str, str]:
        """The public JWK (RFC 7517); private members are never included."""
        jwk = public_jwk(self.private_key, alg=self.alg)
        if self.key_id is not None:
            jwk["kid"] = self.key_id
        return jwk

    def sign(self, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        """Return a compact JWS (RFC 7515 §7.1) of `claims` under `header` plus this key's `alg`."""
        full_header = {"alg": self.alg, **header}
        payload = json.dumps(dict(claims), separators=(",", ":")).encode("utf-8")
        return sign_compact(encode_header(full_header), payload, self.private_key, self.alg)

    def same_key(self, other: SigningKey) -> bool:
        """True when both hold the same public key, algorithm and key id (used to detect rotation)."""
        return (self.alg, self.key_id, self.public_jwk()) == (other.alg, other.key_id, other.public_jwk())

    def __repr__(self) -> str:
        return f"SigningKey(alg={self.alg!r}, key_id={self.key_id!r})"
