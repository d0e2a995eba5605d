"""Transaction Tokens (draft-ietf-oauth-transaction-tokens), a first implementation on token exchange.

A Txn-Token is a short-lived JWT (`typ: txntoken+jwt`) that carries the subject and the
authorization context of one external request through the call chain inside a trust domain.
A workload asks for one with a token exchange request (RFC 8693) whose `requested_token_type`
is `urn:ietf:params:oauth:token-type:txn_token`; the answer has `issued_token_type` txn_token
and `token_type` `N_A` (it is not an OAuth access token, and no resource server accepts it as
one: its `typ` is not `at+jwt`).

Claims: `iss`, `aud` (the trust domain), `iat`, `exp`, `txn` (the transaction id, kept by every
replacement), `sub` (the subject's), `scope` (only narrows), `req_wl` (the requesting
workload: the authenticated client), and, when the request gives them, `tctx` (from
`request_details`) and `rctx` (from `request_context`); both parameters are base64url-encoded
JSON objects. A Txn-Token presented as `subject_token` (`subject_token_type` txn_token) is
replaced: same `txn`, `sub` and `tctx`, a scope no wider, an expiry no later.

Deliberate limits of this first implementation: no `Txn-Token` header verifier in
`warden.resource` yet, no sender binding, no status list entry (they live for seconds).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warden.jose import PublicKey, b64url_decode
from warden.protocol import params
from warden.protocol.access_token import verify_signed
from warden.protocol.errors import InvalidRequest, InvalidTarget
from warden.protocol.form import Form
from warden.protocol.reasons import Reason
from warden.protocol.token_exchange import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, TOKEN_EXCHANGE

__all__ = [
    "TXN_TOKEN_TYPE",
    "TXN_TYP",
    "TransactionTokenRequest",
    "is_transaction_token_request",
    "parse_transaction_token_request",
    "verify_transaction_token",
]

TXN_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:txn_token"
TXN_TYP = "txntoken+jwt"
_SUBJECT_TYPES = frozenset({ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, TXN_TOKEN_TYPE})
_MAX_CONTEXT_BYTES = 2048


@dataclass(frozen=True, slots=True, repr=False)
class TransactionTokenRequest:
    subject_token: str
    subject_token_type: str
    audience: str
    scopes: tuple[str, ...] | None
    request_context: Mapping[str, Any] | None
    request_details: Mapping[str, Any] | None

    def __repr__(self) -> str:  # never the subject token
        return (f"TransactionTokenRequest(subject_token_type={self.subject_token_type!r}, "
                f"audience={self.audience!r}, scopes={self.scopes!r})")


def is_transaction_token_request(form: Form) -> bool:
    """Whether a token exchange form asks for a Txn-Token (a repeated value is the parser's to refuse)."""
    return TXN_TOKEN_TYPE in form.multi("requested_token_type")


def _context(form: Form, name: str, reason: Reason) -> Mapping[str, Any] | None:
    raw = form.single(name)
    if raw is None:
        return None
    try:
        decoded = b64url_decode(raw.encode("ascii"))
        if len(decoded) > _MAX_CONTEXT_BYTES:
            raise ValueError("too large")
        value = json.loads(decoded, parse_constant=_refuse)
    except (ValueError, RecursionError):
        raise InvalidRequest(f"{name} must be a base64url-encoded JSON object of at most {_MAX_CONTEXT_BYTES} bytes",
                             reason=reason) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{name} must be a base64url-encoded JSON object", reason=reason)
    return value


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_transaction_token_request(form: Form, trust_domain: str) -> TransactionTokenRequest:
    """The Txn-Token request a token exchange form makes; InvalidRequest, InvalidScope or InvalidTarget."""
    if form.single("grant_type") != TOKEN_EXCHANGE or form.single("requested_token_type") != TXN_TOKEN_TYPE:
        raise InvalidRequest("not a transaction token request", reason="unsupported_token_type")
    subject_token, subject_token_type = params.subject_token(form, _SUBJECT_TYPES, "the requesting workload")
    audience = form.single("audience")
    if audience is None:
        raise InvalidRequest("audience (the trust domain) is required", reason="missing_audience")
    if audience != trust_domain or form.multi("resource"):
        raise InvalidTarget("audience must be this server's trust domain", reason="resource_not_granted")
    return TransactionTokenRequest(subject_token, subject_token_type, audience, params.requested_scopes(form),
                                   _context(form, "request_context", "malformed_request_context"),
                                   _context(form, "request_details", "malformed_request_context"))


def verify_transaction_token(token: str, keys: Mapping[str, tuple[str, PublicKey]], issuer: str,
                             trust_domain: str) -> dict[str, Any] | None:
    """The claims of a Txn-Token this issuer signed for `trust_domain`, or None (forged, foreign, malformed).
    Expiry is the caller's decision."""
    claims = verify_signed(token, keys, (TXN_TYP,))
    if claims is None:
        return None
    for name in ("txn", "sub", "scope", "req_wl"):
        if not isinstance(claims.get(name), str):
            return None
    exp = claims.get("exp")
    if claims.get("iss") != issuer or claims.get("aud") != trust_domain or not isinstance(exp, int) or isinstance(
            exp, bool):
        return None
    return claims
