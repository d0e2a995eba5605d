"""JWT access tokens (RFC 9068): the claims Warden issues and the checks it applies to its own.

Issued tokens carry `typ: at+jwt` (§2.1) and `iss`, `sub` (= client_id for the
client credentials grant, §2.2), `client_id`, `aud`, `scope`, `iat`, `exp`,
`jti`, plus `tenant` when the client has one. `aud` is a string for one audience
and an array for several.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from warden.jose import JoseError, PublicKey, parse_compact

__all__ = ["AccessTokenClaims", "ClaimsTemplate", "claims_template", "render_claims", "verify_own_token",
           "verify_signed"]


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


@dataclass(frozen=True, slots=True)
class ClaimsTemplate:
    """The claims every token of one client, audience set and scope shares, rendered once.

    Only `iat`, `exp`, `jti` and `cnf` differ between such tokens, so the issuer can
    keep a template per (client, request) and fill in the rest on each issuance.
    """

    head: str  # {"iss":...,"sub":...,"client_id":...,"aud":...,"scope":...,"iat":
    tail: str  # ,"tenant":... when the client has one

    def render(self, iat: int, exp: int, jti: str, cnf: Mapping[str, str] | None = None,
               status: tuple[str, int] | None = None) -> bytes:
        """`status` is the token's Token Status List entry: (list uri, index)."""
        body = f'{self.head}{int(iat)},"exp":{int(exp)},"jti":{_quote(jti)}{self.tail}'
        if cnf is not None:
            body += ',"cnf":' + json.dumps(dict(cnf), separators=(",", ":"))
        if status is not None:
            body += f',"status":{{"status_list":{{"idx":{int(status[1])},"uri":{_quote(status[0])}}}}}'
        return (body + "}").encode("ascii")


def claims_template(iss: str, client_id: str, aud: tuple[str, ...], scope: str,
                    tenant: str | None = None) -> ClaimsTemplate:
    client = _quote(client_id)
    audience = _quote(aud[0]) if len(aud) == 1 else "[" + ",".join(map(_quote, aud)) + "]"
    head = f'{{"iss":{_quote(iss)},"sub":{client},"client_id":{client},"aud":{audience},"scope":{_quote(scope)},"iat":'
    return ClaimsTemplate(head, "" if tenant is None else ',"tenant":' + _quote(tenant))


def render_claims(claims: AccessTokenClaims) -> bytes:
    """The JSON payload, compact and in a stable order.

    Byte for byte what `json.dumps(body, separators=(",", ":"))` gives, assembled
    from fragments because it runs on every issuance: strings pass through the
    same C escaper, and the rarely present `cnf` goes through `json.dumps` itself.
    """
    template = claims_template(claims.iss, claims.client_id, claims.aud, claims.scope, claims.tenant)
    return template.render(claims.iat, claims.exp, claims.jti, claims.cnf)


def verify_signed(token: str, keys: Mapping[str, tuple[str, PublicKey]], typs: tuple[str, ...]) -> dict[str, Any] | None:
    """The claims of a JWT signed by one of `keys` (by `kid`) whose `typ` is one of `typs` (lower case),
    or None. Only the signature and the header are checked: the claims are the caller's to check."""
    try:
        parsed = parse_compact(token)
        kid, typ = parsed.kid, parsed.typ
    except JoseError:
        return None
    if kid is None or kid not in keys or typ is None or typ.lower() not in typs:
        return None
    alg, key = keys[kid]
    try:
        parsed.verify(key, (alg,))
        return parsed.claims()
    except JoseError:
        return None


def verify_own_token(token: str, keys: Mapping[str, tuple[str, PublicKey]], issuer: str) -> dict[str, Any] | None:
    """Return the claims of a token this issuer signed, or None (foreign, forged or malformed).

    Expiry and revocation are the caller's decisions; this only establishes authenticity.
    """
    claims = verify_signed(token, keys, ("at+jwt", "application/at+jwt"))
    if claims is None or claims.get("iss") != issuer or not isinstance(claims.get("exp"), int) or not isinstance(
            claims.get("jti"), str) or not isinstance(claims.get("client_id"), str):
        return None
    return claims
