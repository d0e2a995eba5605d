"""In-process validation of JWT access tokens (RFC 9068 §4, RFC 8725, RFC 6750 §3.1).

`Validator.validate` (and `avalidate`) accepts a token only if:

- it is one compact JWS of at most `max_token_bytes` (RFC 8725 §3.3; JWE, `zip`,
  unknown `crit` and duplicate members are refused by `warden.jose`);
- `typ` is `at+jwt` or `application/at+jwt`, case-insensitively (RFC 9068 §4
  item 1, RFC 7515 §4.1.9, RFC 8725 §3.11);
- `alg` is in the allow-list and the key from the issuer's JWK Set is pinned to
  it (RFC 9068 §4 items 4-5, RFC 8725 §3.1); key material in the header
  (`jwk`, `jku`, `x5u`, `x5c`) is never used (RFC 8725 §3.10);
- `iss` equals the issuer exactly (RFC 9068 §4 item 3; no prefix or substring
  matching, PyJWT CVE-2024-53861);
- `aud` is a string equal to, or an array containing, the audience (§4 item 6,
  RFC 8725 §3.9);
- `exp` is present and not passed; `nbf` and `iat` are optional but may not be
  in the future; all three allow `leeway` seconds of clock skew (RFC 7519
  §4.1.4-6, §4 item 7), and all three are NumericDates as `warden.jose.members`
  reads them (a number, not a bool, from 0 to year 9999: `exp: 10**400` is
  `InvalidToken`, not an `OverflowError`);
- `sub`, `client_id` and `jti` are non-empty strings (RFC 9068 §2.2);
  `scope` is a space-delimited string when present (§2.2.3);
- `tenant` equals the configured tenant, when one is configured;
- `cnf`, when present, names only methods this library enforces: `jkt`
  (a DPoP proof is required, RFC 9449 §7.1; a DPoP-bound token presented as
  Bearer is refused, §7.2) and `x5t#S256` (the client certificate must match,
  RFC 8705 §3);
- the required scopes were granted (otherwise `InsufficientScope`, 403);
- `status`, when it names a Token Status List entry, reads VALID in the issuer's
  list (draft-ietf-oauth-status-list; see `warden.resource.status`), checked on
  every call, cached or not; a revoked token is refused within the list's ttl.

Validated tokens are remembered in a `ValidationCache` (see `warden.resource.cache`);
the required scopes and the sender binding are checked on every call, cached or not.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Generator, Iterable, Mapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

import httpx

from warden._drive import arun, run
from warden.core.clock import Clock, SystemClock
from warden.core.tracing import set_attributes, span
from warden.jose import (
    ALGORITHMS,
    MAX_TOKEN_BYTES,
    Algorithm,
    JoseError,
    MemberError,
    PublicKey,
    b64url_decode,
    numeric_date,
    parse_json_object,
    parse_protected_header,
)
from warden.protocol.dpop import same_string as _same_string
from warden.protocol.errors import InsufficientScope, InvalidToken, OAuthError
from warden.protocol.reasons import Reason, as_reason
from warden.protocol.status_list import StatusReference, parse_status_reference
from warden.resource.cache import CachedToken, ValidationCache
from warden.resource.claims import Claims
from warden.resource.dpop import DPoPVerifier
from warden.resource.jwks import DEFAULT_ALGORITHMS, JWKSCache
from warden.resource.mtls import CertificateInput, certificate_thumbprint
from warden.resource.status import StatusListCache, StatusPolicy

if TYPE_CHECKING:
    from warden.resource.metrics import ResourceMetrics

__all__ = ["Scheme", "Validator"]

logger = logging.getLogger("warden.resource")

Scheme = Literal["Bearer", "DPoP"]
"""How the token was presented: `Authorization: Bearer` (RFC 6750) or `DPoP` (RFC 9449 §7.1)."""

_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_CONFIRMATION_METHODS = frozenset({"jkt", "x5t#S256"})
_MEMO_SIZE = 256
_NO_SCOPES: frozenset[str] = frozenset()

_Header = tuple[str, "str | None", Algorithm]


class _Presentation(TypedDict, total=False):
    """How the token came with its request: the keyword arguments of `avalidate` (those of `validate`)."""

    scopes: Iterable[str]
    scheme: Scheme
    dpop_proof: str | Sequence[str] | None
    method: str | None
    url: str | None
    client_certificate: CertificateInput | None


class _KeyNotCached(Exception):
    """The signing key must be fetched before the token can be verified; raised by `_validate_token`
    and yielded by the validation flow as the effect that fetches it."""

    def __init__(self, kid: str | None, alg: str) -> None:
        super().__init__(kid, alg)
        self.kid = kid
        self.alg = alg


def _invalid(description: str, reason: Reason) -> InvalidToken:
    return InvalidToken(description, reason=reason)


class Validator:
    """Validates RFC 9068 JWT access tokens for one resource server (see the module docstring).

    Args:
        issuer: the authorization server's issuer identifier (exact match).
        audience: this resource server's identifier, expected in `aud`.
        algorithms: signature algorithms accepted (subset of ES256, RS256, PS256, EdDSA).
        leeway: seconds of clock skew allowed for `exp`, `nbf` and `iat`.
        tenant: when set, the token's `tenant` claim must equal it.
        jwks: a key cache to share; otherwise one is built from the arguments below.
        jwks_uri: skip discovery and fetch keys from this URL.
        refresh_cooldown: minimum seconds between two JWK Set fetches.
        http_client / async_http_client: clients for discovery and JWKS (caller-owned).
        dpop: DPoP proof settings (nonces, window, replay store); defaults are used otherwise.
        cache_size: how many validated tokens to remember (0 disables the cache).
        cache_ttl: longest time a token is recognised from the cache without re-verification.
        max_token_bytes: larger tokens are refused before any decoding.
        status_policy: how Token Status Lists are cached and what a fetch failure means
            (`warden.resource.status.StatusPolicy`); the lists use `http_client` when given.
        clock: time source in seconds since the epoch, shared with the key and DPoP checks.
        metrics: a `warden.resource.metrics.ResourceMetrics` to count validations, latency,
            JWKS fetches and key-cache hits on (optional; needs prometheus-client).
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        leeway: float = 30.0,
        tenant: str | None = None,
        jwks: JWKSCache | None = None,
        jwks_uri: str | None = None,
        refresh_cooldown: float = 30.0,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        dpop: DPoPVerifier | None = None,
        cache_size: int = 10_000,
        cache_ttl: float = 300.0,
        max_token_bytes: int = MAX_TOKEN_BYTES,
        status_policy: StatusPolicy | None = None,
        clock: Clock | None = None,
        metrics: ResourceMetrics | None = None,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("issuer and audience are required")
        unknown = set(algorithms) - set(ALGORITHMS)
        if unknown or not algorithms:
            raise ValueError(f"unsupported algorithms: {sorted(unknown)}")
        if not 0 <= leeway <= 300:
            raise ValueError("leeway must be between 0 and 300 seconds")
        self.issuer = issuer
        self.audience = audience
        self.tenant = tenant
        self.algorithms = frozenset(algorithms)
        self.leeway = float(leeway)
        self._clock: Clock = clock or SystemClock()
        if jwks is None:
            jwks = JWKSCache(issuer, jwks_uri=jwks_uri, algorithms=algorithms,
                             refresh_cooldown=refresh_cooldown, http_client=http_client,
                             async_http_client=async_http_client, clock=self._clock)
        elif jwks.issuer != issuer:
            raise ValueError("the JWKS cache belongs to another issuer")
        self.jwks = jwks
        self.metrics = metrics
        if metrics is not None and jwks.metrics is None:
            jwks.metrics = metrics
        self.dpop = dpop or DPoPVerifier(clock=self._clock, leeway=min(self.leeway, 60.0))
        self.cache = ValidationCache(cache_size, cache_ttl)
        self.status = StatusListCache(jwks, policy=status_policy, http_client=http_client, clock=self._clock)
        self._max_token_bytes = max_token_bytes
        self._headers: dict[bytes, _Header] = {}
        self._thumbprints: dict[object, str] = {}

    def __repr__(self) -> str:
        return f"Validator(issuer={self.issuer!r}, audience={self.audience!r})"

    # -- public API ---------------------------------------------------------------------

    def validate(
        self,
        token: str,
        *,
        scopes: Iterable[str] = (),
        scheme: Scheme = "Bearer",
        dpop_proof: str | Sequence[str] | None = None,
        method: str | None = None,
        url: str | None = None,
        client_certificate: CertificateInput | None = None,
    ) -> Claims:
        """Validate `token` and return its claims.

        Args:
            token: the access token, without the scheme.
            scopes: scopes the request needs; all must have been granted.
            scheme: `"Bearer"` or `"DPoP"`, as in the Authorization header.
            dpop_proof: the `DPoP` header value(s); method and url: the request's,
                needed when the token is DPoP-bound (RFC 9449 §4.3).
            client_certificate: the TLS client certificate, needed when the
                token is certificate-bound (RFC 8705 §3).

        Raises:
            InvalidToken: the token is malformed, forged, expired, not for this
                resource server, or presented without its sender binding.
            InsufficientScope: the token is valid but lacks a required scope.
            InvalidDPoPProof / UseDPoPNonce: the DPoP proof was refused.
            TemporarilyUnavailable: the issuer's keys were never obtainable.
        """
        started = perf_counter()
        with span("warden.resource.validate") as current:
            try:
                entry = self.cache.lookup(token, now := self._clock.now(), self.jwks.generation)
                if entry is None or entry.status is not None:  # off the cached path: fetch a key, check a status
                    entry = run(self._completion(token, now, entry), self._perform)
                claims = self._check_use(entry, token, scopes, scheme, dpop_proof, method, url, client_certificate)
                return self._validated(claims, started, current)
            except OAuthError as exc:
                self._refused(exc, started, current)
                raise

    async def avalidate(self, token: str, **presented: Unpack[_Presentation]) -> Claims:
        """Async form of `validate` (the same keyword arguments, the same defaults): key fetches use
        `httpx.AsyncClient` and never block the loop."""
        arguments = _arguments(presented)
        started = perf_counter()
        with span("warden.resource.validate") as current:
            try:
                entry = self.cache.lookup(token, now := self._clock.now(), self.jwks.generation)
                if entry is None or entry.status is not None:
                    entry = await arun(self._completion(token, now, entry), self._aperform)
                return self._validated(self._check_use(entry, token, *arguments), started, current)
            except OAuthError as exc:
                self._refused(exc, started, current)
                raise

    def _perform(self, effect: _KeyNotCached | tuple[StatusReference, float]) -> PublicKey | None:
        if isinstance(effect, _KeyNotCached):
            return self.jwks.get_key(effect.kid, effect.alg)
        self.status.check(*effect)
        return None

    async def _aperform(self, effect: _KeyNotCached | tuple[StatusReference, float]) -> PublicKey | None:
        if isinstance(effect, _KeyNotCached):
            return await self.jwks.aget_key(effect.kid, effect.alg)
        await self.status.acheck(*effect)
        return None

    def _completion(self, token: str, now: float, entry: CachedToken | None
                    ) -> Generator[_KeyNotCached | tuple[StatusReference, float], PublicKey | None, CachedToken]:
        """The flow past the cache: verify the token (yielding for a key to fetch), check its status entry."""
        if entry is None:
            try:
                entry = self._validate_token(token, now)
            except _KeyNotCached as missing:
                entry = self._validate_token(token, now, (yield missing))
        if entry.status is not None:
            yield entry.status, now
        return entry

    def _validated(self, claims: Claims, started: float, current: Any) -> Claims:
        if self.metrics is not None:
            self.metrics.validated(perf_counter() - started)
        if current is not None:
            set_attributes(current, {"warden.outcome": "valid"})
        return claims

    def _refused(self, exc: OAuthError, started: float, current: Any) -> None:
        logger.debug("access token refused: %s", exc.reason)
        if self.metrics is not None:
            self.metrics.refused(exc.reason, perf_counter() - started)
        if current is not None:
            set_attributes(current, {"warden.outcome": "invalid", "warden.reason": exc.reason,
                                     "http.response.status_code": exc.status})

    # -- steps --------------------------------------------------------------------------

    def _validate_token(self, token: str, now: float, key: PublicKey | None = None) -> CachedToken:
        """Every check that does not depend on how the token was presented (the cacheable part).

        Raises `_KeyNotCached` when the signing key must first be fetched; the caller fetches it and
        calls again with `key`."""
        generation = self.jwks.generation
        if type(token) is not str:
            raise _invalid("malformed access token", "malformed")
        if len(token) > self._max_token_bytes:
            raise _invalid("access token too large", "too_large")  # before any decoding (T39)
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            raise _invalid("malformed access token", "malformed") from None
        parts = raw.split(b".")
        if len(parts) != 3:
            raise _invalid("malformed access token", "jwe" if len(parts) == 5 else "malformed")
        head, payload_segment, signature_segment = parts
        alg, kid, algorithm = self._headers.get(head) or self._header(head)
        if key is None:
            key = self.jwks.fresh_key(kid, alg, now)
            if self.metrics is not None:
                self.metrics.key_lookup(key is not None)
            if key is None:
                raise _KeyNotCached(kid, alg)
        try:
            signature = b64url_decode(signature_segment)
        except ValueError:
            raise _invalid("malformed access token", "malformed") from None
        if not algorithm.verify(key, raw[: len(head) + 1 + len(payload_segment)], signature):
            raise _invalid("invalid signature", "signature")
        try:
            payload = parse_json_object(b64url_decode(payload_segment))
        except ValueError:  # JoseError included
            raise _invalid("malformed access token", "malformed") from None
        entry = self._check_claims(payload, now, generation)
        self.cache.put(token, entry)
        return entry

    def _header(self, segment: bytes) -> _Header:
        try:
            header = parse_protected_header(segment)
        except MemberError as exc:  # kid, typ or cty not a string, jwk not an object
            raise _invalid("malformed access token", as_reason(exc.member, "malformed")) from None
        except JoseError:
            raise _invalid("malformed access token", "malformed") from None
        alg = header["alg"]
        if alg not in self.algorithms:
            raise _invalid("signature algorithm not accepted", "alg")  # RFC 8725 §3.1
        # parse_protected_header refused a typ or kid that is not a string (warden.jose.members)
        typ, kid = header.get("typ"), header.get("kid")
        if typ is None or typ.lower() not in _ACCESS_TOKEN_TYPES:
            raise _invalid("not an access token", "typ")  # RFC 9068 §4, RFC 8725 §3.11
        result: _Header = (alg, kid, ALGORITHMS[alg])
        if len(self._headers) >= _MEMO_SIZE:
            self._headers.clear()
        self._headers[segment] = result
        return result

    def _check_claims(self, payload: dict[str, object], now: float, generation: int) -> CachedToken:
        # Written for speed: this runs on every uncached validation.
        get = payload.get
        if get("iss") != self.issuer:
            raise _invalid("invalid issuer", "iss")  # RFC 9068 §4 item 3: exact match
        aud = get("aud")
        if aud == self.audience:  # only a str can equal the (str) audience
            audiences: tuple[str, ...] = (self.audience,)
        elif type(aud) is list and self.audience in aud and all(type(a) is str for a in aud):
            audiences = tuple(aud)
        else:
            raise _invalid("invalid audience", "aud")  # RFC 9068 §4 item 6, RFC 8725 §3.9
        leeway = self.leeway
        try:
            exp, nbf, iat = numeric_date(payload, "exp"), numeric_date(payload, "nbf"), numeric_date(payload, "iat")
        except MemberError as exc:  # a bool, a string, 10**400...: RFC 7519 §2 NumericDate
            raise _invalid(f"invalid {exc.member}", as_reason(exc.member, "malformed")) from None
        if exp is None:
            raise _invalid("token has no expiry", "exp")
        if now >= exp + leeway:
            raise _invalid("token expired", "expired")  # RFC 7519 §4.1.4
        latest = now + leeway
        not_before = -math.inf
        if nbf is not None:
            if nbf > latest:
                raise _invalid("token not yet valid", "nbf")  # RFC 7519 §4.1.5
            not_before = nbf
        if iat is not None:
            if iat > latest:
                raise _invalid("token issued in the future", "iat")
            not_before = max(not_before, iat)
        # RFC 9068 §2.2: sub, client_id and jti are required.
        sub, client_id, jti = get("sub"), get("client_id"), get("jti")
        if type(sub) is not str or not sub:
            raise _invalid("token has no sub", "missing_sub")
        if type(client_id) is not str or not client_id:
            raise _invalid("token has no client_id", "missing_client_id")
        if type(jti) is not str or not jti:
            raise _invalid("token has no jti", "missing_jti")
        scope = get("scope")
        if type(scope) is str:
            granted = frozenset(scope.split())
        elif scope is None:
            granted = _NO_SCOPES
        else:
            raise _invalid("invalid scope claim", "scope")
        if self.tenant is not None and get("tenant") != self.tenant:
            raise _invalid("token is for another tenant", "tenant")
        jkt = x5t = None
        cnf = get("cnf")
        if cnf is not None:
            # RFC 7800 §3.1: a confirmation method we cannot enforce must not be ignored.
            if type(cnf) is not dict or not cnf or not _CONFIRMATION_METHODS.issuperset(cnf):
                raise _invalid("unsupported token binding", "cnf")
            jkt, x5t = cnf.get("jkt"), cnf.get("x5t#S256")
            if (jkt is not None and (type(jkt) is not str or not jkt)) or (
                    x5t is not None and (type(x5t) is not str or not x5t)):
                raise _invalid("unsupported token binding", "cnf")
        status: StatusReference | None = None
        if "status" in payload:
            try:
                status = parse_status_reference(payload)
            except ValueError:
                raise _invalid("malformed status claim", "status_invalid") from None
        until = exp + leeway
        until = min(until, now + self.cache.max_ttl)
        return CachedToken(Claims(payload, audiences, granted), granted, not_before - leeway, until,
                           generation, jkt, x5t, status)

    def _check_use(
        self,
        entry: CachedToken,
        token: str,
        scopes: Iterable[str],
        scheme: Scheme,
        dpop_proof: str | Sequence[str] | None,
        method: str | None,
        url: str | None,
        client_certificate: CertificateInput | None,
    ) -> Claims:
        """Check how the token was presented; answer its claims."""
        if scheme != "Bearer" and scheme != "DPoP":
            raise ValueError(f"unknown scheme {scheme!r}")
        if entry.jkt is not None:
            if scheme != "DPoP":
                # RFC 9449 §7.2: a DPoP-bound token presented as a bearer token.
                raise _invalid("DPoP-bound token presented without DPoP", "dpop_bound_as_bearer")
            if method is None or url is None:
                raise ValueError("method and url are required to check a DPoP proof")
            self.dpop.validate_proof(dpop_proof, method=method, url=url, access_token=token, jkt=entry.jkt)
        elif scheme == "DPoP":
            raise _invalid("token is not DPoP-bound", "not_dpop_bound")  # RFC 9449 §7.1
        if entry.x5t is not None:
            if client_certificate is None:
                raise _invalid("certificate-bound token needs the client certificate", "mtls_no_cert")
            if not _same_string(self._thumbprint(client_certificate), entry.x5t):
                raise _invalid("token is bound to another certificate", "mtls_mismatch")  # RFC 8705 §3
        if scopes:
            if isinstance(scopes, str):
                scopes = scopes.split()  # a space-delimited scope string (RFC 6749 §3.3)
            granted = entry.scope
            for scope in scopes:
                if scope not in granted:
                    raise InsufficientScope("insufficient scope", reason="insufficient_scope")
        return entry.claims

    def _thumbprint(self, certificate: CertificateInput) -> str:
        thumbprint = self._thumbprints.get(certificate)
        if thumbprint is None:
            try:
                thumbprint = certificate_thumbprint(certificate)
            except ValueError:
                raise _invalid("unreadable client certificate", "mtls_bad_cert") from None
            if len(self._thumbprints) >= _MEMO_SIZE:
                self._thumbprints.clear()
            self._thumbprints[certificate] = thumbprint
        return thumbprint


_DEFAULTS: dict[str, Any] = dict(Validator.validate.__kwdefaults__ or {})  # validate's keywords, in order


def _arguments(presented: Mapping[str, Any]) -> tuple[Any, ...]:
    """`avalidate`'s keywords as `_check_use` takes them: `validate`'s list and defaults, the one source."""
    unknown = presented.keys() - _DEFAULTS.keys()
    if unknown:
        raise TypeError(f"avalidate() got an unexpected keyword argument {min(unknown)!r}")
    merged = _DEFAULTS | dict(presented)
    return tuple(merged[name] for name in _DEFAULTS)
