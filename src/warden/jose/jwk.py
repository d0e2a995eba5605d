"""JSON Web Keys (RFC 7517, RFC 7518 §6, RFC 8037) and thumbprints (RFC 7638).

Only public keys are read from JWK documents; a JWK that carries private members
is refused, so a private key can never arrive through a JWKS or a DPoP header.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from warden.jose._b64 import b64_to_int, b64url_decode, b64url_encode, int_to_b64
from warden.jose.algorithms import ALGORITHMS, UnsupportedAlgorithm

__all__ = ["PrivateKey", "PublicKey", "algorithm_matches", "generate_private_key", "jwk_thumbprint", "load_public_jwk", "public_jwk"]

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def generate_private_key(alg: str) -> PrivateKey:
    """Generate a fresh private key suitable for `alg`."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise UnsupportedAlgorithm(f"unsupported algorithm {alg!r}")


def public_jwk(key: PublicKey | PrivateKey, *, kid: str | None = None, alg: str | None = None) -> dict[str, str]:
    """Return the public JWK of `key` (private members are never emitted)."""
    pub: PublicKey = (
        key.public_key()
        if isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey))
        else key
    )
    jwk: dict[str, str]
    if isinstance(pub, ec.EllipticCurvePublicKey):
        if not isinstance(pub.curve, ec.SECP256R1):
            raise UnsupportedAlgorithm("only P-256 EC keys are supported")
        nums = pub.public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "x": int_to_b64(nums.x, 32), "y": int_to_b64(nums.y, 32)}
    elif isinstance(pub, rsa.RSAPublicKey):
        rnums = pub.public_numbers()
        jwk = {"kty": "RSA", "n": int_to_b64(rnums.n), "e": int_to_b64(rnums.e)}
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = pub.public_bytes(Encoding.Raw, PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw).decode()}
    else:
        raise UnsupportedAlgorithm("unsupported key type")
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
        jwk["use"] = "sig"
    return jwk


def load_public_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """Parse a public JWK; raise ValueError if it is malformed, private or of an unsupported type."""
    if not isinstance(jwk, Mapping):
        raise ValueError("JWK must be an object")
    if _PRIVATE_MEMBERS & set(jwk):
        raise ValueError("JWK contains private key material")
    kty = jwk.get("kty")
    try:
        if kty == "EC":
            if jwk.get("crv") != "P-256":
                raise ValueError("unsupported EC curve")
            x_raw, y_raw = _b64(jwk, "x"), _b64(jwk, "y")
            if len(x_raw) != 32 or len(y_raw) != 32:
                raise ValueError("P-256 coordinates must be 32 octets")  # RFC 7518 §6.2.1.2-3
            x, y = int.from_bytes(x_raw, "big"), int.from_bytes(y_raw, "big")
            # from_public_numbers rejects points that are not on the curve (RFC 8725 §3.4).
            return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        if kty == "RSA":
            n, e = b64_to_int(_str(jwk, "n")), b64_to_int(_str(jwk, "e"))
            if n.bit_length() < 2048:
                raise ValueError("RSA key shorter than 2048 bits")
            return rsa.RSAPublicNumbers(e, n).public_key()
        if kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise ValueError("unsupported OKP curve")
            raw = b64url_decode(_str(jwk, "x").encode("ascii"))
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise ValueError(f"invalid {kty} JWK: {exc}") from None
    raise ValueError("unsupported key type")


def _b64(jwk: Mapping[str, Any], name: str) -> bytes:
    return b64url_decode(_str(jwk, name).encode("ascii"))


def _str(jwk: Mapping[str, Any], name: str) -> str:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"member {name!r} missing")
    return value


_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise ValueError("unsupported key type")
    try:
        canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    except KeyError as exc:
        raise ValueError(f"member {exc.args[0]!r} missing") from None
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest()).decode("ascii")


def algorithm_matches(alg: str, key: object) -> bool:
    algorithm = ALGORITHMS.get(alg)
    return algorithm is not None and algorithm.key_matches(key)
