"""Compact JWS for Warden: strict parsing, allow-listed asymmetric algorithms, JWK handling.

The cryptography comes from `cryptography`; this package only frames it (RFC 7515
compact serialization, RFC 7517 JWK, RFC 7638 thumbprints) with the checks of
RFC 8725: the caller names the algorithms it accepts, every key is pinned to one
algorithm, `none`/HMAC/JWE/`zip` are refused, unknown `crit` is refused, and
size is capped before anything is decoded. Header members and claims are read through the
typed accessors of `warden.jose.members`, so untrusted JSON of any type is a `JoseError`. Keys named in a header (`jwk`, `jku`,
`x5u`, `x5c`) are never used by this package.
"""

from warden.jose._b64 import b64url_decode, b64url_encode
from warden.jose.algorithms import ALGORITHMS, Algorithm, UnsupportedAlgorithm
from warden.jose.jwk import (
    PrivateKey,
    PublicKey,
    generate_private_key,
    jwk_thumbprint,
    load_public_jwk,
    public_jwk,
)
from warden.jose.jws import (
    MAX_TOKEN_BYTES,
    CompactSigner,
    DelegatedSigner,
    JoseError,
    ParsedJWS,
    compact_signer,
    encode_header,
    parse_compact,
    parse_json_object,
    parse_protected_header,
    sign_compact,
)
from warden.jose.members import (
    MAX_NUMERIC_DATE,
    MemberError,
    numeric_date,
    object_member,
    string_member,
    string_or_list_member,
)

__all__ = [
    "ALGORITHMS",
    "MAX_NUMERIC_DATE",
    "MAX_TOKEN_BYTES",
    "Algorithm",
    "CompactSigner",
    "DelegatedSigner",
    "JoseError",
    "MemberError",
    "ParsedJWS",
    "PrivateKey",
    "PublicKey",
    "UnsupportedAlgorithm",
    "b64url_decode",
    "b64url_encode",
    "compact_signer",
    "encode_header",
    "generate_private_key",
    "jwk_thumbprint",
    "load_public_jwk",
    "numeric_date",
    "object_member",
    "parse_compact",
    "parse_json_object",
    "parse_protected_header",
    "public_jwk",
    "sign_compact",
    "string_member",
    "string_or_list_member",
]
