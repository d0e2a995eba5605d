"""Registry of the JWS algorithms Warden signs and verifies, keyed by wire name (RFC 7518, RFC 8037).

Only asymmetric algorithms exist here: `none` and HMAC cannot be selected by any
caller, which removes the HS/RS key-confusion class of bugs at the root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from warden.core.algorithms import VERIFY_ALGS, AlgName

__all__ = ["ALGORITHMS", "AlgName", "Algorithm", "UnsupportedAlgorithm"]

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
_PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class UnsupportedAlgorithm(ValueError):
    """The algorithm is not in the registry or does not match the key."""


@dataclass(frozen=True)
class Algorithm:
    name: str
    kty: str
    key_matches: Callable[[object], bool]
    sign: Callable[[_PrivateKey, bytes], bytes]
    verify: Callable[[_PublicKey, bytes, bytes], bool]


_P256_ORDER_BYTES = 32
# Padding and hash descriptors are immutable: build them once rather than per signature.
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_SHA256 = hashes.SHA256()
_PKCS1V15 = padding.PKCS1v15()


def _es256_sign(key: _PrivateKey, data: bytes) -> bytes:
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    r, s = decode_dss_signature(key.sign(data, _ECDSA_SHA256))
    return r.to_bytes(_P256_ORDER_BYTES, "big") + s.to_bytes(_P256_ORDER_BYTES, "big")


def _es256_verify(key: _PublicKey, data: bytes, sig: bytes) -> bool:
    # RFC 7518 §3.4: the signature is exactly R || S, 32 bytes each; DER is refused.
    if len(sig) != 2 * _P256_ORDER_BYTES or not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if r == 0 or s == 0:
        return False
    try:
        key.verify(encode_dss_signature(r, s), data, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True


def _rs256_sign(key: _PrivateKey, data: bytes) -> bytes:
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.sign(data, _PKCS1V15, _SHA256)


def _rsa_verify(key: _PublicKey, data: bytes, sig: bytes, scheme: padding.AsymmetricPadding) -> bool:
    # RFC 8017 §8.2.2 and §8.1.2: the signature is k octets, k = ceil(modulus bits / 8).
    if not isinstance(key, rsa.RSAPublicKey) or len(sig) != (key.key_size + 7) // 8:
        return False
    try:
        key.verify(sig, data, scheme, _SHA256)
    except InvalidSignature:
        return False
    return True


def _rs256_verify(key: _PublicKey, data: bytes, sig: bytes) -> bool:
    return _rsa_verify(key, data, sig, _PKCS1V15)


_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def _ps256_sign(key: _PrivateKey, data: bytes) -> bytes:
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.sign(data, _PSS, _SHA256)


def _ps256_verify(key: _PublicKey, data: bytes, sig: bytes) -> bool:
    return _rsa_verify(key, data, sig, _PSS)


def _eddsa_sign(key: _PrivateKey, data: bytes) -> bytes:
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.sign(data)


def _eddsa_verify(key: _PublicKey, data: bytes, sig: bytes) -> bool:
    if not isinstance(key, ed25519.Ed25519PublicKey) or len(sig) != 64:
        return False
    try:
        key.verify(sig, data)
    except InvalidSignature:
        return False
    return True


def _is_p256(key: object) -> bool:
    return isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)) and isinstance(
        key.curve, ec.SECP256R1
    )


def _is_rsa(key: object) -> bool:
    return isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)) and key.key_size >= 2048


def _is_ed25519(key: object) -> bool:
    return isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey))


ALGORITHMS: dict[str, Algorithm] = {  # keyed by exactly the names of core.algorithms.VERIFY_ALGS
    "ES256": Algorithm("ES256", "EC", _is_p256, _es256_sign, _es256_verify),
    "RS256": Algorithm("RS256", "RSA", _is_rsa, _rs256_sign, _rs256_verify),
    "PS256": Algorithm("PS256", "RSA", _is_rsa, _ps256_sign, _ps256_verify),
    "EdDSA": Algorithm("EdDSA", "OKP", _is_ed25519, _eddsa_sign, _eddsa_verify),
}
assert tuple(ALGORITHMS) == VERIFY_ALGS, "the registry and the closed set of names must agree"
