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
from warden.protocol.errors import InvalidScope, InvalidTarget

__all__ = ["TokenDecision", "decide_token"]


@dataclass(frozen=True)
class TokenDecision:
    audiences: tuple[str, ...]
    scopes: tuple[str, ...]
    ttl: int
    alg: str


def decide_token(
    grants: Sequence[Grant],
    apis: Mapping[str, Api],
    requested_scopes: tuple[str, ...] | None,
    requested_resources: tuple[str, ...] | None,
) -> TokenDecision:
    """Resolve a request against the client's grants, or raise InvalidScope / InvalidTarget."""
    by_api = {g.api: g for g in grants if g.api in apis}
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
        default = min(by_api.values(), key=lambda g: g.position)
        audiences = (default.api,)

    allowed: list[str] = []
    for aud in audiences:
        for scope in by_api[aud].scopes:
            if scope in apis[aud].scopes and scope not in allowed:
                allowed.append(scope)

    if requested_scopes is None:
        scopes = tuple(allowed)
    else:
        for scope in requested_scopes:
            if scope not in allowed:
                raise InvalidScope("requested scope is not granted for the requested resource",
                                   reason="scope_not_granted")
        scopes = requested_scopes

    algs = {apis[a].alg for a in audiences}
    if len(algs) > 1:
        raise InvalidTarget("requested resources use different signing algorithms; request them separately",
                            reason="mixed_algorithms")
    ttl = min(apis[a].token_ttl for a in audiences)
    return TokenDecision(tuple(audiences), scopes, ttl, algs.pop())
