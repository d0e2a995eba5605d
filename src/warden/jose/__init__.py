"""Compact JWS for Warden: strict parsing, allow-listed asymmetric algorithms, JWK handling.

The cryptography comes from `cryptography`; this package only frames it (RFC 7515
compact serialization, RFC 7517 JWK, RFC 7638 thumbprints) with the checks of
RFC 8725: the caller names the algorithms it accepts, every key is pinned to one
algorithm, `none`/HMAC/JWE/`zip` are refused, unknown `crit` is refused, and
size is capped before anything is decoded. Keys named in a header (`jwk`, `jku`,
`x5u`, `x5c`) are never used by this package.
"""

from warden.jose.algorithms import ALGORITHMS, Algorithm, UnsupportedAlgorithm
from warden.jose.jwk import (
    PublicKey,
    PrivateKey,
    generate_private_key,
    load_public_jwk,
    public_jwk,
    jwk_thumbprint,
)
from warden.jose.jws import JoseError, ParsedJWS, parse_compact, sign_compact, encode_header

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "UnsupportedAlgorithm",
    "PublicKey",
    "PrivateKey",
    "generate_private_key",
    "load_public_jwk",
    "public_jwk",
    "jwk_thumbprint",
    "JoseError",
    "ParsedJWS",
    "parse_compact",
    "sign_compact",
    "encode_header",
]
