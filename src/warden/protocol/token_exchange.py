"""OAuth 2.0 Token Exchange (RFC 8693): the request (§2.1), the `act` claim (§4.1), the token types (§3).

Warden implements the broker pattern: an authenticated client that may exchange presents a
Warden access token it received (`subject_token`) and obtains a token for another target,
in which the subject's `sub` is kept and the requesting client is recorded as the current
actor (`act`, nested for chains, §4.1). Deliberate limits:

- `subject_token_type` is `access_token` or `jwt` (a Warden access token is both); no other
  type is accepted (§3).
- `actor_token` is refused: the authenticated client is the actor, so a second credential
  would only add a way for the two to disagree (§2.1 makes it optional).
- `requested_token_type`, when sent, must be `access_token` or `jwt`; an access token is issued
  and `issued_token_type` says so (§2.2.1).
- `resource` and `audience` name the target alike, as at the client credentials grant (RFC 8707).

Parsing is a pure function of the form: it raises only `OAuthError` subclasses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warden.protocol import params
from warden.protocol.errors import InvalidGrant, InvalidRequest, InvalidScope, UnsupportedGrantType
from warden.protocol.form import Form
from warden.protocol.resource_indicators import parse_resources

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "JWT_TOKEN_TYPE",
    "PARAMETERS",
    "TOKEN_EXCHANGE",
    "TokenExchangeRequest",
    "act_chain",
    "narrow_scopes",
    "nest_actor",
    "parse_token_exchange_request",
]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
PARAMETERS = ("grant_type", "subject_token", "subject_token_type", "requested_token_type", "scope", "resource",
              "audience", "actor_token", "actor_token_type")
_SUBJECT_TYPES = frozenset({ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE})
_MAX_CHAIN = 32  # far beyond any configured depth: bounds the work on a forged-looking but signed chain


@dataclass(frozen=True, slots=True, repr=False)
class TokenExchangeRequest:
    subject_token: str
    subject_token_type: str
    scopes: tuple[str, ...] | None
    resources: tuple[str, ...] | None

    def __repr__(self) -> str:  # never the subject token
        return (f"TokenExchangeRequest(subject_token_type={self.subject_token_type!r}, scopes={self.scopes!r}, "
                f"resources={self.resources!r})")


def parse_token_exchange_request(form: Form) -> TokenExchangeRequest:
    """The token exchange request a form makes (RFC 8693 §2.1); InvalidRequest, InvalidScope,
    InvalidTarget or UnsupportedGrantType when it is malformed."""
    if form.single("grant_type") != TOKEN_EXCHANGE:
        raise UnsupportedGrantType("grant_type must be " + TOKEN_EXCHANGE, reason="unsupported_grant_type")
    subject_token, subject_token_type = params.subject_token(form, _SUBJECT_TYPES, "the actor")
    requested = form.single("requested_token_type")
    if requested is not None and requested not in _SUBJECT_TYPES:
        raise InvalidRequest("requested_token_type must be " + " or ".join(sorted(_SUBJECT_TYPES)),
                             reason="unsupported_token_type")
    return TokenExchangeRequest(subject_token, subject_token_type, params.requested_scopes(form),
                                parse_resources(form))


def act_chain(act: Any) -> tuple[str, ...]:
    """The actors an `act` claim names, current first (§4.1: the outermost `act` is the current actor,
    nested ones are prior actors). Empty for no claim; InvalidGrant when it is not a chain of
    objects with a string `sub`."""
    chain: list[str] = []
    node = act
    while node is not None:
        if not isinstance(node, Mapping) or not isinstance(node.get("sub"), str) or len(chain) >= _MAX_CHAIN:
            raise InvalidGrant("subject_token has a malformed act claim", reason="subject_token_invalid")
        chain.append(node["sub"])
        node = node.get("act")
    return tuple(chain)


def nest_actor(actor: str, chain: tuple[str, ...]) -> dict[str, Any]:
    """The `act` claim naming `actor` as the current actor, with `chain` (current first) as prior actors."""
    act: dict[str, Any] | None = None
    for sub in reversed(chain):
        act = {"sub": sub} if act is None else {"sub": sub, "act": act}
    return {"sub": actor} if act is None else {"sub": actor, "act": act}


def narrow_scopes(requested: tuple[str, ...] | None, granted: tuple[str, ...], held: tuple[str, ...]) -> tuple[str, ...]:
    """The scopes of an exchanged token: `scope` only narrows. `granted` are the scopes the requesting
    client may obtain at the target (already checked against `requested`), `held` the subject token's.
    Every requested scope must be held; with none requested, those both allow. InvalidScope otherwise."""
    if requested is not None:
        for scope in requested:
            if scope not in held or scope not in granted:
                raise InvalidScope("a requested scope is not in the subject token's scope",
                                   reason="scope_not_in_subject_token")
        return requested
    scopes = tuple(s for s in granted if s in held)
    if not scopes:
        raise InvalidScope("the subject token holds no scope granted for the target",
                           reason="scope_not_in_subject_token")
    return scopes
