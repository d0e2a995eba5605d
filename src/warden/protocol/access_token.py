"""JWT access tokens (RFC 9068): the claims Warden issues and the checks it applies to its own.

Issued tokens carry `typ: at+jwt` (§2.1) and `iss`, `sub` (= client_id for the
client credentials grant, §2.2), `client_id`, `aud`, `scope`, `iat`, `exp`,
`jti`, plus `tenant` when the client has one. `aud` is a string for one audience
and an array for several.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, Mapping

from warden.jose import JoseError, PublicKey, parse_compact

__all__ = ["AccessTokenClaims", "render_claims", "verify_own_token"]


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    iss: str
    client_id: str
    aud: tuple[str, ...]
    scope: str
    iat: int
    exp: int
    jti: str
    tenant: str | None = None
    cnf: Mapping[str, str] | None = None


def render_claims(claims: AccessTokenClaims) -> bytes:
    """The JSON payload, compact and in a stable order.

    Byte for byte what `json.dumps(body, separators=(",", ":"))` gives, assembled
    from fragments because it runs on every issuance: strings pass through the
    same C escaper, and the rarely present `cnf` goes through `json.dumps` itself.
    """
    aud = claims.aud
    parts = ['{"iss":', _quote(claims.iss), ',"sub":', _quote(claims.client_id), ',"client_id":',
             _quote(claims.client_id), ',"aud":',
             _quote(aud[0]) if len(aud) == 1 else "[" + ",".join(map(_quote, aud)) + "]",
             ',"scope":', _quote(claims.scope), ',"iat":', str(int(claims.iat)), ',"exp":', str(int(claims.exp)),
             ',"jti":', _quote(claims.jti)]
    if claims.tenant is not None:
        parts += (',"tenant":', _quote(claims.tenant))
    if claims.cnf is not None:
        parts += (',"cnf":', json.dumps(dict(claims.cnf), separators=(",", ":")))
    parts.append("}")
    return "".join(parts).encode("ascii")


def verify_own_token(token: str, keys: Mapping[str, tuple[str, PublicKey]], issuer: str) -> dict[str, Any] | None:
    """Return the claims of a token this issuer signed, or None (foreign, forged or malformed).

    Expiry and revocation are the caller's decisions; this only establishes authenticity.
    """
    try:
        parsed = parse_compact(token)
    except JoseError:
        return None
    kid = parsed.header.get("kid")
    typ = parsed.header.get("typ")
    if not isinstance(kid, str) or kid not in keys or not isinstance(typ, str) or typ.lower() not in (
            "at+jwt", "application/at+jwt"):
        return None
    alg, key = keys[kid]
    try:
        parsed.verify(key, (alg,))
        claims = parsed.claims()
    except JoseError:
        return None
    if claims.get("iss") != issuer or not isinstance(claims.get("exp"), int) or not isinstance(
            claims.get("jti"), str) or not isinstance(claims.get("client_id"), str):
        return None
    return claims
