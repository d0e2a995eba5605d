"""Client credentials grant (RFC 6749 §4.4): parse the token request.

Grant types sit in `GRANT_TYPES`, keyed by wire name, each declaring the
parameters it accepts: `client_credentials` and token exchange (RFC 8693,
`warden.protocol.token_exchange`). Refresh tokens are never issued (§4.4.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from warden.protocol.errors import InvalidRequest, UnsupportedGrantType
from warden.protocol.form import Form
from warden.protocol.params import requested_scopes
from warden.protocol.resource_indicators import parse_resources
from warden.protocol.token_exchange import PARAMETERS as TOKEN_EXCHANGE_PARAMETERS
from warden.protocol.token_exchange import TOKEN_EXCHANGE

__all__ = ["GRANT_TYPES", "TokenRequest", "parse_token_request"]

GRANT_TYPES: dict[str, tuple[str, ...]] = {
    "client_credentials": ("grant_type", "scope", "resource", "audience"),
    TOKEN_EXCHANGE: TOKEN_EXCHANGE_PARAMETERS,
}


@dataclass(frozen=True, slots=True)
class TokenRequest:
    grant_type: str
    scopes: tuple[str, ...] | None
    resources: tuple[str, ...] | None


def parse_token_request(form: Form) -> TokenRequest:
    """The token request a form makes; computed once per form (see `Form.derived`)."""
    parsed = form.derived.get("token_request")
    if isinstance(parsed, TokenRequest):
        return parsed
    parsed = form.derived["token_request"] = _parse(form)
    return parsed


def _parse(form: Form) -> TokenRequest:
    grant_type = form.single("grant_type")
    if grant_type is None:
        raise InvalidRequest("grant_type is required", reason="missing_grant_type")
    if grant_type != "client_credentials":  # the other registered grants have parsers of their own
        raise UnsupportedGrantType("supported grant types: " + ", ".join(sorted(GRANT_TYPES)),
                                   reason="unsupported_grant_type")
    return TokenRequest(grant_type, requested_scopes(form), parse_resources(form))
