"""Issue access tokens: policy decision, claims, signature. Nothing else runs on this path.

A service asks for the same token again and again, so the policy decision and the
claims that follow from it are kept per (client, scopes, resources) in the
registry's `derived` map, which the registry empties whenever a client, an API or
a key changes; the entry itself must also be the one the decision was made for.
What varies per token (times, `jti`, sender binding, key) is computed every time.
"""

from __future__ import annotations

import binascii
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from warden.core.api import Api
from warden.core.client import Grant
from warden.core.policy import PolicyRefusal, TokenDecision, decide_binding, decide_token
from warden.core.revocation import StatusEntry
from warden.protocol.access_token import ClaimsTemplate, claims_template
from warden.protocol.client_credentials import TokenRequest
from warden.protocol.errors import (
    InvalidDPoPProof,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    OAuthError,
    TemporarilyUnavailable,
)
from warden.protocol.reasons import Reason
from warden.services.keyring import Signer
from warden.services.registry import ClientEntry, Registry

__all__ = ["IssuedToken", "decide_issuance", "issue_token", "oauth_error", "sign_token", "token_binding",
           "token_decision"]

_REFUSALS: dict[str, type[OAuthError]] = {"invalid_scope": InvalidScope, "invalid_target": InvalidTarget,
                                          "invalid_request": InvalidRequest, "invalid_dpop_proof": InvalidDPoPProof}


def oauth_error(refusal: PolicyRefusal) -> OAuthError:
    """The protocol's error for a refusal of the core's policy: same code, description and reason."""
    return _REFUSALS[refusal.error](refusal.description, reason=cast(Reason, refusal.reason))


def token_decision(grants: Sequence[Grant], apis: Mapping[str, Api], scopes: tuple[str, ...] | None,
                   resources: tuple[str, ...] | None) -> TokenDecision:
    """`core.policy.decide_token`, refusing with the protocol's error (InvalidScope, InvalidTarget)."""
    try:
        return decide_token(grants, apis, scopes, resources)
    except PolicyRefusal as refusal:
        raise oauth_error(refusal) from None


def token_binding(decision: TokenDecision, client_requires_dpop: bool, client_requires_cert: bool,
                  jkt: str | None, x5t: str | None) -> dict[str, str] | None:
    """`core.policy.decide_binding`, refusing with the protocol's error (InvalidDPoPProof, InvalidRequest)."""
    try:
        return decide_binding(decision, client_requires_dpop, client_requires_cert, jkt, x5t)
    except PolicyRefusal as refusal:
        raise oauth_error(refusal) from None


@dataclass(slots=True)  # not frozen: built on every token request, where frozen construction costs 4-5x
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    jti: str
    audiences: tuple[str, ...]
    kid: str
    token_type: str = "Bearer"
    issued_token_type: str | None = None  # token exchange (RFC 8693 §2.2.1); None for other grants

    def __repr__(self) -> str:
        return f"IssuedToken(jti={self.jti!r}, scope={self.scope!r}, expires_in={self.expires_in})"


@dataclass(frozen=True, slots=True)
class _Prepared:
    entry: ClientEntry
    decision: TokenDecision
    scope: str
    claims: ClaimsTemplate


_PREPARED_LIMIT = 20_000  # bounds memory: when full, the map starts over
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _new_jti() -> str:
    """What `secrets.token_urlsafe(18)` gives (18 bytes of os.urandom, base64url, 24 characters) without its
    five Python-level calls; 144 random bits make collisions out of reach."""
    return binascii.b2a_base64(os.urandom(18), newline=False).translate(_URLSAFE).decode("ascii")


def _prepare(entry: ClientEntry, request: TokenRequest, registry: Registry, issuer: str) -> _Prepared:
    key = ("token", entry.client.client_id, request.scopes, request.resources, issuer)
    derived = registry.derived
    prepared = derived.get(key)
    if isinstance(prepared, _Prepared) and prepared.entry is entry:
        return prepared
    decision = token_decision(entry.grants, registry.apis, request.scopes, request.resources)
    cap = entry.client.metadata.max_token_lifetime
    if cap is not None and cap < decision.ttl:  # conditional access: the client's cap wins over the API's
        decision = dataclasses.replace(decision, ttl=cap)
    scope = " ".join(decision.scopes)
    prepared = _Prepared(entry, decision, scope, claims_template(issuer, entry.client.client_id,
                                                                 decision.audiences, scope, entry.client.tenant))
    if len(derived) >= _PREPARED_LIMIT:
        derived.clear()
    derived[key] = prepared
    return prepared


def issue_token(entry: ClientEntry, request: TokenRequest, registry: Registry, issuer: str,
                now: float, *, jkt: str | None = None, x5t: str | None = None,
                status: StatusEntry | None = None) -> IssuedToken:
    """`jkt` is the thumbprint of a verified DPoP proof's key; `x5t` the thumbprint of the client
    certificate presented on this request (both None on a plain bearer request); `status` the
    token's Token Status List entry (list uri, index)."""
    return sign_token(*decide_issuance(entry, request, registry, issuer, jkt, x5t), now, status)


def decide_issuance(entry: ClientEntry, request: TokenRequest, registry: Registry, issuer: str,
                    jkt: str | None, x5t: str | None) -> tuple[_Prepared, dict[str, str] | None, Signer]:
    """The policy half of `issue_token`: what the token may say (grants, audiences, binding) and its signer."""
    prepared = _prepare(entry, request, registry, issuer)
    decision = prepared.decision
    meta = entry.client.metadata
    cnf = token_binding(decision, meta.dpop_bound_access_tokens, meta.tls_client_certificate_bound_access_tokens,
                        jkt, x5t)
    signer = registry.signers.get(decision.alg)
    if signer is None:
        raise TemporarilyUnavailable("no active signing key", reason="no_signing_key")
    return prepared, cnf, signer


def sign_token(prepared: _Prepared, cnf: dict[str, str] | None, signer: Signer, now: float,
               status: StatusEntry | None = None) -> IssuedToken:
    """The signing half of `issue_token`."""
    decision = prepared.decision
    iat = int(now)
    if status is None:
        jti = _new_jti()
        payload = prepared.claims.render(iat, iat + decision.ttl, jti, cnf)
    else:
        jti = _new_jti() + status.jti_suffix()
        payload = prepared.claims.render(iat, iat + decision.ttl, jti, cnf, (status.uri, status.idx))
    token = signer.compact.sign(payload)
    # RFC 9449 §5: a DPoP-bound token has token_type DPoP; a certificate-bound one stays Bearer.
    token_type = "DPoP" if cnf is not None and "jkt" in cnf else "Bearer"
    return IssuedToken(token, decision.ttl, prepared.scope, jti, decision.audiences, signer.kid, token_type)
