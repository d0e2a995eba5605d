"""Token-request policy: which audiences and scopes a client may obtain.

Strict and predictable (DESIGN.md): a scope no grant allows, or no API defines,
is refused with invalid_scope, never silently dropped; a resource the client is
not granted is refused with invalid_target (RFC 8707 §2). With no `resource`,
the client's default grant (position 0) names the audience. With no `scope`,
every scope the grants allow for the chosen audiences is issued, and the
response states it (RFC 6749 §3.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from warden.core.api import Api
from warden.core.client import Grant
from warden.protocol.errors import InvalidDPoPProof, InvalidRequest, InvalidScope, InvalidTarget

__all__ = ["TokenDecision", "decide_token", "decide_binding"]


@dataclass(frozen=True, slots=True)
class TokenDecision:
    audiences: tuple[str, ...]
    scopes: tuple[str, ...]
    ttl: int
    alg: str
    dpop_required: bool = False
    cert_bound: bool = False


def decide_token(
    grants: Sequence[Grant],
    apis: Mapping[str, Api],
    requested_scopes: tuple[str, ...] | None,
    requested_resources: tuple[str, ...] | None,
) -> TokenDecision:
    """Resolve a request against the client's grants, or raise InvalidScope / InvalidTarget."""
    # Plain loops rather than comprehensions: this runs on every token request, and on
    # Python 3.11 each comprehension or generator builds a function object and a frame.
    by_api: dict[str, Grant] = {}
    for grant in grants:
        if grant.api in apis:
            by_api[grant.api] = grant
    if requested_resources:
        for resource in requested_resources:
            if resource not in by_api:
                # Unknown and not-granted answer alike, so the endpoint is no API directory.
                raise InvalidTarget("resource is not known or not granted to this client",
                                    reason="resource_not_granted")
        audiences = requested_resources
    else:
        if not by_api:
            raise InvalidScope("client has no grants", reason="no_grants")
        default: Grant | None = None
        for grant in by_api.values():
            if default is None or grant.position < default.position:
                default = grant
        assert default is not None
        audiences = (default.api,)

    allowed: list[str] = []
    alg = apis[audiences[0]].alg
    ttl = apis[audiences[0]].token_ttl
    mixed = dpop_required = cert_bound = False
    for aud in audiences:
        api = apis[aud]
        for scope in by_api[aud].scopes:
            if scope in api.scopes and scope not in allowed:
                allowed.append(scope)
        mixed = mixed or api.alg != alg
        ttl = min(ttl, api.token_ttl)
        dpop_required = dpop_required or api.dpop_required
        cert_bound = cert_bound or api.cert_bound

    if requested_scopes is None:
        scopes = tuple(allowed)
    else:
        for scope in requested_scopes:
            if scope not in allowed:
                raise InvalidScope("requested scope is not granted for the requested resource",
                                   reason="scope_not_granted")
        scopes = requested_scopes
    if mixed:
        raise InvalidTarget("requested resources use different signing algorithms; request them separately",
                            reason="mixed_algorithms")
    return TokenDecision(tuple(audiences), scopes, ttl, alg, dpop_required=dpop_required, cert_bound=cert_bound)


def decide_binding(decision: TokenDecision, client_requires_dpop: bool, client_requires_cert: bool,
                   jkt: str | None, x5t: str | None) -> dict[str, str] | None:
    """The token's `cnf` claim, or raise when the client or an audience requires a binding the request
    cannot give. A DPoP proof always binds (RFC 9449 §6.1); a client certificate binds when the client
    or an audience asks for certificate-bound tokens (RFC 8705 §3)."""
    if jkt is None and (client_requires_dpop or decision.dpop_required):
        raise InvalidDPoPProof("a DPoP proof is required", reason="dpop_required")  # RFC 9449 §5.2
    wants_cert = client_requires_cert or decision.cert_bound
    if wants_cert and x5t is None:
        raise InvalidRequest("a client certificate is required for certificate-bound tokens",
                             reason="certificate_required")
    cnf: dict[str, str] = {}
    if jkt is not None:
        cnf["jkt"] = jkt
    if wants_cert and x5t is not None:
        cnf["x5t#S256"] = x5t
    return cnf or None
