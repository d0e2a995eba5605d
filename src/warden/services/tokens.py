"""Issue access tokens: policy decision, claims, signature. Nothing else runs on this path."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from warden.core.policy import decide_binding, decide_token
from warden.jose import sign_compact
from warden.protocol.access_token import AccessTokenClaims, render_claims
from warden.protocol.client_credentials import TokenRequest
from warden.protocol.errors import TemporarilyUnavailable
from warden.services.registry import ClientEntry, Registry

__all__ = ["IssuedToken", "issue_token"]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    jti: str
    audiences: tuple[str, ...]
    kid: str
    token_type: str = "Bearer"

    def __repr__(self) -> str:
        return f"IssuedToken(jti={self.jti!r}, scope={self.scope!r}, expires_in={self.expires_in})"


def issue_token(entry: ClientEntry, request: TokenRequest, registry: Registry, issuer: str,
                now: float, *, jkt: str | None = None, x5t: str | None = None) -> IssuedToken:
    """`jkt` is the thumbprint of a verified DPoP proof's key; `x5t` the thumbprint of the client
    certificate presented on this request (both None on a plain bearer request)."""
    decision = decide_token(entry.grants, registry.apis, request.scopes, request.resources)
    meta = entry.client.metadata
    cnf = decide_binding(decision, meta.dpop_bound_access_tokens, meta.tls_client_certificate_bound_access_tokens,
                         jkt, x5t)
    signer = registry.signers.get(decision.alg)
    if signer is None:
        raise TemporarilyUnavailable("no active signing key", reason="no_signing_key")
    iat = int(now)
    jti = secrets.token_urlsafe(18)
    scope = " ".join(decision.scopes)
    claims = AccessTokenClaims(iss=issuer, client_id=entry.client.client_id, aud=decision.audiences,
                               scope=scope, iat=iat, exp=iat + decision.ttl, jti=jti,
                               tenant=entry.client.tenant, cnf=cnf)
    token = sign_compact(signer.header_segment, render_claims(claims), signer.key, signer.alg)
    # RFC 9449 §5: a DPoP-bound token has token_type DPoP; a certificate-bound one stays Bearer.
    token_type = "DPoP" if cnf is not None and "jkt" in cnf else "Bearer"
    return IssuedToken(token, decision.ttl, scope, jti, decision.audiences, signer.kid, token_type)
