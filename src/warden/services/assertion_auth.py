"""Client authentication with a JWT assertion: `private_key_jwt` and workload identity.

`private_key_jwt` (RFC 7523 §2.2): the client signs with its own key, registered as
a JWKS by value or by `jwks_uri`; `iss` = `sub` = client_id; `aud` is this server's
issuer as the sole value (RFC 10070 §4), or, only with the documented compatibility
setting, the token endpoint URL; `jti` is single use across every process sharing
the store, so of racing copies exactly one is accepted. `exp` - `iat` may reach
`assertion_max_lifetime` (1 h, what common clients sign), but an assertion is accepted
only within `assertion_max_age` (5 min) of its `iat`, so one stolen before use is worth
minutes, and its `jti` record is kept only that long.

Workload identity: the assertion is a token from a trusted issuer (Kubernetes,
a CI system, SPIFFE JWT-SVIDs). The client is the one bound to the token's
(`iss`, `sub`) with every required claim matching; no static secret exists.

Every failure is `invalid_client` with a private reason; a key source that cannot
be reached is 503, never an authentication verdict. Header members and claims of any JSON type
are read with the typed accessors of `warden.jose.members`, so a list where a string is due is a
failure like any other (counted by the failed-auth throttle and audited by the caller).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from warden.core.client import AuthMethod
from warden.core.client_metadata import FederatedIdentity
from warden.jose import MemberError, ParsedJWS, string_member
from warden.protocol.client_assertion import (
    AssertionRules,
    VerificationKey,
    VerifiedAssertion,
    parse_assertion,
    unverified_claims,
    verify_assertion,
)
from warden.protocol.client_auth import PresentedCredentials
from warden.protocol.errors import InvalidClient
from warden.protocol.reasons import Reason
from warden.services.key_sources import KeySources
from warden.services.registry import ClientEntry, Registry
from warden.settings import ClientAuthSettings, TrustedIssuer

__all__ = ["AssertionAuthenticator", "claim_at"]

_FAILED = "client authentication failed"


def _string_claim(claims: Mapping[str, Any], name: str) -> str | None:
    """A claim that names something (`iss`, `sub`): a string, else None (absent or of another type)."""
    try:
        return string_member(claims, name)
    except MemberError:
        return None


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or by a '/'-separated path into nested objects (`kubernetes.io/namespace`)."""
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


@dataclass
class AssertionAuthenticator:
    issuer: str
    settings: ClientAuthSettings
    trusted: Mapping[str, TrustedIssuer]
    sources: KeySources
    use_once: Callable[[str, float], Awaitable[bool]]  # False when the key was already used

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/oauth2/token"

    async def authenticate(self, presented: PresentedCredentials, registry: Registry, now: float) -> ClientEntry:
        assert presented.assertion is not None
        parsed = parse_assertion(presented.assertion)
        claims = unverified_claims(parsed)
        iss = _string_claim(claims, "iss")
        trusted = self.trusted.get(iss) if iss is not None else None
        if trusted is not None:
            return await self._federated(presented, parsed, claims, trusted, registry, now)
        return await self._private_key_jwt(presented, parsed, claims, registry, now)

    async def _private_key_jwt(self, presented: PresentedCredentials, parsed: ParsedJWS, claims: dict[str, Any],
                               registry: Registry, now: float) -> ClientEntry:
        sub = _string_claim(claims, "sub")
        client_id = presented.client_id or sub
        if not client_id:
            raise InvalidClient(_FAILED, reason="unknown_client")
        if presented.client_id and sub != presented.client_id:
            raise InvalidClient("client assertion sub must equal client_id", reason="assertion_sub")
        entry = await registry.client(client_id)
        if entry is None:
            raise InvalidClient(_FAILED, reason="unknown_client")
        if entry.client.auth_method is not AuthMethod.PRIVATE_KEY_JWT:
            raise InvalidClient(_FAILED, reason="auth_method_mismatch")  # no downgrade between methods
        meta = entry.client.metadata
        kid = parsed.kid
        keys: list[VerificationKey]
        if meta.jwks is not None:
            keys = self.sources.inline(client_id, meta.jwks)
        elif meta.jwks_uri is not None:
            keys = await self.sources.remote(jwks_uri=meta.jwks_uri).keys(kid)
        else:
            raise InvalidClient(_FAILED, reason="no_client_keys")
        audiences = {self.issuer}
        if self.settings.accept_token_endpoint_audience:
            audiences.add(self.token_endpoint)
        rules = AssertionRules(issuer=client_id, subject=client_id, audiences=audiences, sole_audience=True,
                               max_lifetime=self.settings.assertion_max_lifetime, leeway=self.settings.leeway,
                               max_age=self.settings.assertion_max_age)
        verified = verify_assertion(parsed, keys, rules, now)
        if not entry.client.enabled:
            raise InvalidClient(_FAILED, reason="client_disabled")
        # Kept only as long as the assertion could be accepted: min(exp, iat + max_age), plus leeway.
        if not await self.use_once(f"pkjwt:{client_id}:{verified.jti}", verified.usable_until + self.settings.leeway):
            raise InvalidClient("client assertion was already used", reason="assertion_replayed")
        return entry

    async def _federated(self, presented: PresentedCredentials, parsed: ParsedJWS, claims: dict[str, Any],
                         trusted: TrustedIssuer, registry: Registry, now: float) -> ClientEntry:
        sub = _string_claim(claims, "sub")
        if not sub:
            raise InvalidClient("platform token sub is required", reason="assertion_sub")
        candidates = await registry.federated_clients(trusted.issuer, sub)
        if presented.client_id:
            if presented.client_id not in candidates:
                raise InvalidClient(_FAILED, reason="federation_not_bound")
            client_id = presented.client_id
        elif len(candidates) == 1:
            client_id = next(iter(candidates))
        else:
            reason: Reason = "federation_not_bound" if not candidates else "federation_ambiguous"
            raise InvalidClient(_FAILED if not candidates else "client_id is required for this identity",
                                reason=reason)
        entry = await registry.client(client_id)
        if entry is None or entry.client.auth_method is not AuthMethod.PRIVATE_KEY_JWT:
            raise InvalidClient(_FAILED, reason="federation_not_bound")
        verified = await self._verify_platform_token(parsed, trusted, sub, now)
        if not self.is_bound(entry, trusted, verified):
            raise InvalidClient(_FAILED, reason="federation_claims")
        if not entry.client.enabled:
            raise InvalidClient(_FAILED, reason="client_disabled")
        if (trusted.single_use and verified.jti is not None
                and not await self.use_once(f"fed:{trusted.issuer}:{verified.jti}", verified.exp + self.settings.leeway)):
            raise InvalidClient("platform token was already used", reason="assertion_replayed")
        return entry

    async def verify_platform_token(self, token: str, registry: Registry,
                                    now: float) -> tuple[VerifiedAssertion, ClientEntry | None] | None:
        """A token from a trusted issuer, verified as a workload-identity assertion would be, and the one
        client bound to its (`iss`, `sub`) and claims (None when none or several are); None when the
        token does not name a trusted issuer. InvalidClient (with the assertion's reason) when it fails
        verification. Token exchange (RFC 8693) uses this for federated subject tokens."""
        parsed = parse_assertion(token)
        claims = unverified_claims(parsed)
        iss = _string_claim(claims, "iss")
        trusted = self.trusted.get(iss) if iss is not None else None
        if trusted is None:
            return None
        sub = _string_claim(claims, "sub")
        if not sub:
            raise InvalidClient("platform token sub is required", reason="assertion_sub")
        verified = await self._verify_platform_token(parsed, trusted, sub, now)
        bound = []
        for client_id in sorted(await registry.federated_clients(trusted.issuer, sub)):
            entry = await registry.client(client_id)
            if entry is not None and self.is_bound(entry, trusted, verified):
                bound.append(entry)
        return verified, bound[0] if len(bound) == 1 else None

    async def _verify_platform_token(self, parsed: ParsedJWS, trusted: TrustedIssuer, sub: str,
                                     now: float) -> VerifiedAssertion:
        if trusted.jwks is not None:
            keys = self.sources.inline(f"issuer:{trusted.issuer}", trusted.jwks)
        else:
            source = (self.sources.remote(jwks_uri=trusted.jwks_uri) if trusted.jwks_uri
                      else self.sources.remote(issuer=trusted.issuer))
            keys = await source.keys(parsed.kid)
        rules = AssertionRules(issuer=trusted.issuer, subject=sub, audiences={trusted.audience},
                               sole_audience=False, max_lifetime=trusted.max_token_lifetime,
                               leeway=self.settings.leeway, require_jti=False)
        return verify_assertion(parsed, keys, rules, now)

    def is_bound(self, entry: ClientEntry, trusted: TrustedIssuer, verified: VerifiedAssertion) -> bool:
        """Whether the verified platform token is one of `entry`'s workload identities (with its claims)."""
        return entry.client.auth_method is AuthMethod.PRIVATE_KEY_JWT and any(
            self._claims_match(f, verified.claims) for f in entry.client.metadata.federated
            if (f.issuer, f.subject) == (trusted.issuer, verified.sub))

    @staticmethod
    def _claims_match(binding: FederatedIdentity, claims: Mapping[str, Any]) -> bool:
        return all(claim_at(claims, name) == value for name, value in binding.claims)

