"""JWT client assertions (RFC 7523 §2.2 and §3, RFC 7521 §4.2) with the audience rules of RFC 10070 §4.

Two kinds of assertion authenticate a client at every endpoint that accepts
client authentication (token, introspection, revocation):

- `private_key_jwt`: signed by the client's own key; `iss` = `sub` = client_id,
  `aud` = this server's issuer identifier as the sole value (a string, or an array
  whose only member it is), compared exactly (RFC 10070 §4, CVE-2025-27370);
- a platform token (workload identity): signed by a trusted issuer (a Kubernetes
  cluster, a CI system, a SPIFFE trust domain); its `aud` must contain the audience
  configured for that issuer.

Keys named in the header (`jwk`, `jku`, `x5u`, `x5c`) are never used; only keys the
caller supplies are (RFC 8725 §3.10). Algorithms are allow-listed and asymmetric.
A JWT typed for something else (`at+jwt`, `dpop+jwt`, ...) is refused (RFC 8725 §3.11).
Header members and claims are read with the typed accessors of `warden.jose.members`: a value of
any JSON type where another is due (a list as `typ`, `exp: 10**400`) is `invalid_client`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from warden.core.algorithms import VERIFY_ALGS
from warden.jose import (
    JoseError,
    MemberError,
    ParsedJWS,
    PublicKey,
    numeric_date,
    parse_compact,
    string_member,
    string_or_list_member,
)
from warden.jose.algorithms import ALGORITHMS
from warden.protocol.errors import InvalidClient
from warden.protocol.reasons import Reason

__all__ = [
    "ASSERTION_ALGS",
    "ASSERTION_TYPE",
    "MAX_ASSERTION_BYTES",
    "AssertionRules",
    "VerificationKey",
    "VerifiedAssertion",
    "key_algs",
    "parse_assertion",
    "unverified_claims",
    "verify_assertion",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = VERIFY_ALGS
MAX_ASSERTION_BYTES = 8192
_ACCEPTED_TYP = {None, "jwt", "client-authentication+jwt", "application/client-authentication+jwt"}


@dataclass(frozen=True)
class VerificationKey:
    """A public key with the algorithms it may verify (pinned by its JWK `alg`, or by its type)."""

    kid: str | None
    key: PublicKey
    algs: tuple[str, ...]


@dataclass(frozen=True)
class AssertionRules:
    """What one verification requires. `audiences` are accepted values; with `sole_audience` the
    `aud` claim must be exactly one of them (a string, or a one-member array). `max_lifetime`
    bounds `exp` - `iat`; `max_age`, when set, bounds how long after its `iat` an assertion is
    accepted (or, without `iat`, how far ahead its `exp` may be), whatever its `exp`."""

    issuer: str
    subject: str
    audiences: Collection[str]
    sole_audience: bool
    max_lifetime: int
    leeway: int
    require_jti: bool = True
    max_age: int | None = None


@dataclass(frozen=True)
class VerifiedAssertion:
    iss: str
    sub: str
    jti: str | None
    exp: float
    claims: dict[str, Any]
    usable_until: float  # the last moment (before leeway) it is accepted: what a jti record must cover


def _fail(description: str, reason: Reason) -> InvalidClient:
    return InvalidClient(description, reason=reason)


def parse_assertion(assertion: str) -> ParsedJWS:
    """Decode (without verifying) and apply the structural rules; InvalidClient on failure."""
    try:
        parsed = parse_compact(assertion, max_bytes=MAX_ASSERTION_BYTES)
    except MemberError as exc:  # typ, kid or cty not a string (a list, an object...), jwk not an object
        reason: Reason = "assertion_typ" if exc.member == "typ" else "assertion_malformed"
        raise _fail(f"client assertion is malformed: {exc}", reason) from None
    except JoseError as exc:
        raise _fail(f"client assertion is malformed: {exc}", "assertion_malformed") from None
    if parsed.alg not in ASSERTION_ALGS:
        raise _fail("client assertion algorithm is not allowed", "assertion_alg")
    typ = parsed.typ  # a string or None: parse_compact refuses any other type
    if (typ.lower() if typ is not None else None) not in _ACCEPTED_TYP:
        raise _fail("client assertion has the type of another kind of JWT", "assertion_typ")
    return parsed


def unverified_claims(parsed: ParsedJWS) -> dict[str, Any]:
    """Claims used only to find the client and its keys; nothing is trusted before `verify_assertion`."""
    try:
        return parsed.claims()
    except JoseError:
        raise _fail("client assertion payload is not a JSON object", "assertion_malformed") from None


def verify_assertion(parsed: ParsedJWS, keys: Sequence[VerificationKey], rules: AssertionRules,
                     now: float) -> VerifiedAssertion:
    """Verify signature and claims (RFC 7523 §3); raise InvalidClient with a precise private reason."""
    kid = parsed.kid
    candidates = [k for k in keys if kid is None or k.kid == kid]
    if not candidates:
        raise _fail("client assertion is signed with an unknown key", "assertion_unknown_kid")
    for candidate in candidates:
        if parsed.alg not in candidate.algs:
            continue
        try:
            parsed.verify(candidate.key, (parsed.alg,))
            break
        except JoseError:
            continue
    else:
        raise _fail("client assertion signature is invalid", "assertion_signature")
    claims = unverified_claims(parsed)
    if claims.get("iss") != rules.issuer:  # RFC 7523 §3 item 1, exact string comparison
        raise _fail("client assertion iss is not the expected issuer", "assertion_iss")
    if claims.get("sub") != rules.subject:  # item 2
        raise _fail("client assertion sub is not the expected subject", "assertion_sub")
    try:
        values = string_or_list_member(claims, "aud") or ()
    except MemberError:
        values = ()  # refused just below, as a missing aud is
    if rules.sole_audience:
        ok = len(values) == 1 and values[0] in rules.audiences  # RFC 10070 §4: sole value
    else:
        ok = any(v in rules.audiences for v in values)
    if not ok:
        expected = min(rules.audiences) if rules.audiences else ""
        raise _fail(f"client assertion aud must be {expected}", "assertion_aud")
    try:
        exp, iat, nbf = numeric_date(claims, "exp"), numeric_date(claims, "iat"), numeric_date(claims, "nbf")
    except MemberError as exc:  # a bool, a string, 10**400...: RFC 7519 §2 NumericDate
        raise _fail(f"client assertion {exc.member} must be a NumericDate", "assertion_claims") from None
    if exp is None:
        raise _fail("client assertion exp is required", "assertion_exp")  # item 4
    if exp <= now - rules.leeway:
        raise _fail("client assertion has expired", "assertion_expired")
    start = iat if iat is not None else nbf if nbf is not None else now
    if exp - max(start, now - rules.leeway) > rules.max_lifetime + rules.leeway:
        raise _fail("client assertion lifetime is too long", "assertion_lifetime")  # bounds the replay store
    if iat is not None and iat > now + rules.leeway:
        raise _fail("client assertion iat is in the future", "assertion_iat")
    if nbf is not None and nbf > now + rules.leeway:
        raise _fail("client assertion is not yet valid", "assertion_nbf")
    usable_until = exp
    if rules.max_age is not None:
        # RFC 7523 §3 item 6: refuse an iat unreasonably far in the past. A stolen, never-used assertion is
        # then worth at most max_age, however distant its exp; the jti record prevents replay until then.
        if iat is None:
            if exp - now > rules.max_age + rules.leeway:
                raise _fail(f"client assertion without iat must expire within {rules.max_age} seconds",
                            "assertion_lifetime")
        elif now - iat > rules.max_age:
            raise _fail(f"client assertion iat is more than {rules.max_age} seconds old; sign a fresh one",
                        "assertion_iat_age")
        else:
            usable_until = min(exp, iat + rules.max_age)
    try:
        jti = string_member(claims, "jti")
    except MemberError:
        jti = ""  # refused just below
    if jti is not None and not 0 < len(jti) <= 256:
        raise _fail("client assertion jti must be a string of at most 256 characters", "assertion_jti")
    if rules.require_jti and jti is None:
        raise _fail("client assertion jti is required", "assertion_jti")
    return VerifiedAssertion(rules.issuer, rules.subject, jti, exp, claims, usable_until)


def key_algs(jwk: dict[str, Any], key: PublicKey, allowed: Sequence[str] = ASSERTION_ALGS) -> tuple[str, ...]:
    """Algorithms a key may verify: its JWK `alg` when given (pinned), else every allowed one its type fits."""
    alg = jwk.get("alg")
    if isinstance(alg, str):
        return (alg,) if alg in allowed and ALGORITHMS[alg].key_matches(key) else ()
    return tuple(a for a in allowed if ALGORITHMS[a].key_matches(key))
