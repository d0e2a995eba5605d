"""Token-request policy: which audiences and scopes a client may obtain.

Strict and predictable (DESIGN.md): a scope no grant allows, or no API defines,
is refused with invalid_scope, never silently dropped; a resource the client is
not granted is refused with invalid_target (RFC 8707 §2). With no `resource`,
the client's default grant (position 0) names the audience. With no `scope`,
every scope the grants allow for the chosen audiences is issued, and the
response states it (RFC 6749 §3.3).

A token's `scope` means the same at every audience in its `aud` (each resource
server checks only the scopes, RFC 9068 §4), so a token for several resources
carries only scopes that every one of them defines and grants to the client: a
requested scope missing at any of them is invalid_scope, and with no `scope` the
intersection is issued (invalid_scope when it is empty). A union would let API A
accept a scope the client holds only at API B.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from warden.core.api import Api
from warden.core.client import Grant
from warden.errors import WardenError

__all__ = ["PolicyRefusal", "TokenDecision", "decide_binding", "decide_token"]

RefusalCode = Literal["invalid_scope", "invalid_target", "invalid_request", "invalid_dpop_proof"]


class PolicyRefusal(WardenError):
    """A request the policy refuses: the OAuth error code it answers (RFC 6749 §5.2, RFC 8707 §2,
    RFC 9449 §5.2), a description for the client and the reason for audit and metrics (one of
    `protocol.reasons`). The core does no HTTP: the services turn it into the protocol's error."""

    def __init__(self, error: RefusalCode, description: str, *, reason: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.reason = reason


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
    """Resolve a request against the client's grants, or raise PolicyRefusal (invalid_scope, invalid_target)."""
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
                raise PolicyRefusal("invalid_target", "resource is not known or not granted to this client",
                                    reason="resource_not_granted")
        audiences = requested_resources
    else:
        if not by_api:
            raise PolicyRefusal("invalid_scope", "client has no grants", reason="no_grants")
        default: Grant | None = None
        for grant in by_api.values():
            if default is None or grant.position < default.position:
                default = grant
        assert default is not None
        audiences = (default.api,)

    # Scopes usable at every audience: those the first audience allows, narrowed by each further one.
    first = apis[audiences[0]]
    alg, ttl = first.alg, first.token_ttl
    dpop_required, cert_bound, mixed = first.dpop_required, first.cert_bound, False
    allowed: list[str] = []
    for scope in by_api[audiences[0]].scopes:
        if scope in first.scopes and scope not in allowed:
            allowed.append(scope)
    for aud in audiences[1:]:
        api = apis[aud]
        granted = by_api[aud].scopes
        kept: list[str] = []
        for scope in allowed:
            if scope in granted and scope in api.scopes:
                kept.append(scope)
        allowed = kept
        mixed = mixed or api.alg != alg
        ttl = min(ttl, api.token_ttl)
        dpop_required = dpop_required or api.dpop_required
        cert_bound = cert_bound or api.cert_bound

    several = len(audiences) > 1
    if requested_scopes is None:
        if several and not allowed:
            raise PolicyRefusal("invalid_scope",
                                "the requested resources have no granted scope in common; request them separately",
                                reason="no_common_scope")
        scopes = tuple(allowed)
    else:
        for scope in requested_scopes:
            if scope not in allowed:
                if several:
                    raise PolicyRefusal("invalid_scope", "a requested scope is not granted for every requested "
                                        "resource; request the resources separately",
                                        reason="scope_not_granted_everywhere")
                raise PolicyRefusal("invalid_scope", "requested scope is not granted for the requested resource",
                                    reason="scope_not_granted")
        scopes = requested_scopes
    if mixed:
        raise PolicyRefusal("invalid_target",
                            "requested resources use different signing algorithms; request them separately",
                            reason="mixed_algorithms")
    return TokenDecision(tuple(audiences), scopes, ttl, alg, dpop_required=dpop_required, cert_bound=cert_bound)


def decide_binding(decision: TokenDecision, client_requires_dpop: bool, client_requires_cert: bool,
                   jkt: str | None, x5t: str | None) -> dict[str, str] | None:
    """The token's `cnf` claim, or raise when the client or an audience requires a binding the request
    cannot give. A DPoP proof always binds (RFC 9449 §6.1); a client certificate binds when the client
    or an audience asks for certificate-bound tokens (RFC 8705 §3)."""
    if jkt is None and (client_requires_dpop or decision.dpop_required):
        raise PolicyRefusal("invalid_dpop_proof", "a DPoP proof is required", reason="dpop_required")  # RFC 9449 §5.2
    wants_cert = client_requires_cert or decision.cert_bound
    if wants_cert and x5t is None:
        raise PolicyRefusal("invalid_request", "a client certificate is required for certificate-bound tokens",
                            reason="certificate_required")
    cnf: dict[str, str] = {}
    if jkt is not None:
        cnf["jkt"] = jkt
    if wants_cert and x5t is not None:
        cnf["x5t#S256"] = x5t
    return cnf or None
