"""Transaction Tokens (draft-ietf-oauth-transaction-tokens) at the token endpoint, as a list of named steps.

    require_serving → authentication steps → enforce_rate_limit → require_permission
    → parse_transaction_token_request → wait_out_revocation_window → verify_subject → issue

A Txn-Token is asked for with the token exchange grant and `requested_token_type` txn_token;
`TokenExchangeRouter` picks this step list or the access-token one (`TokenExchangeGrant`) by that
parameter. The shared steps are the other grants' own: permission is the token exchange
permission (`--allow-token-exchange`), and an access-token or federated subject is verified by
`TokenExchangeGrant.verify_subject_token`, so the same rules hold (live, not revoked, same
tenant). A Txn-Token subject is a replacement: same `txn`, `sub` and `tctx`, a scope no wider,
an expiry no later. Audit: `txn_token.issued` (transaction id, subject, requesting workload,
whether it replaced one), `txn_token.denied`. Never a token.
"""

from __future__ import annotations

import binascii
import json
import os
from collections.abc import Awaitable
from typing import Any

from warden.core.algorithms import DEFAULT_ALG
from warden.core.revocation import is_revoked_by_client
from warden.jose import encode_header
from warden.protocol.errors import InvalidClient, InvalidGrant, OAuthError, TemporarilyUnavailable
from warden.protocol.token_exchange import TokenExchangeRequest, narrow_scopes
from warden.protocol.transaction_tokens import (
    TXN_TOKEN_TYPE,
    TXN_TYP,
    is_transaction_token_request,
    parse_transaction_token_request,
    verify_transaction_token,
)
from warden.services.audit import AuditSink
from warden.services.call import Call, ServingState
from warden.services.caller_auth import AuthenticatedEndpoint, CallerAuthentication
from warden.services.client_credentials_grant import ClientCredentialsGrant
from warden.services.steps import Step
from warden.services.token_exchange_grant import TokenExchangeGrant
from warden.services.tokens import IssuedToken
from warden.settings import TransactionTokenSettings

__all__ = ["TokenExchangeRouter", "TransactionTokenGrant"]


def _new_txn() -> str:
    return binascii.b2a_base64(os.urandom(18), newline=False).translate(bytes.maketrans(b"+/", b"-_")).decode()


class TransactionTokenGrant(AuthenticatedEndpoint):
    def __init__(self, state: ServingState, auth: CallerAuthentication, base: ClientCredentialsGrant,
                 exchange: TokenExchangeGrant, settings: TransactionTokenSettings, issuer: str,
                 audit: AuditSink) -> None:
        super().__init__(state, auth, issuer, audit)
        self._exchange = exchange
        self._settings = settings
        self.trust_domain = settings.trust_domain or issuer
        self.steps: tuple[Step[Call], ...] = base.grant_steps(  # a Txn-Token is neither DPoP-bound nor listed
            self.parse_transaction_token_request, self.verify_subject, issue=self.issue,
            permission=exchange.require_permission, access_token=False)

    async def run(self, call: Call) -> IssuedToken:
        await self._run_steps(self.steps, call, traced=True)
        issued, subject, request = call.issued, call.claims, call.transaction_request
        assert issued is not None and subject is not None and request is not None
        self._audit.emit("txn_token.issued", client_id=call.authenticated.client.client_id, source=call.source,
                         txn=issued.jti, subject=subject["sub"], subject_issuer=subject.get("iss"),
                         replaced=request.subject_token_type == TXN_TOKEN_TYPE, scope=issued.scope, kid=issued.kid)
        return issued

    def _refused(self, call: Call, error: OAuthError) -> None:
        if not isinstance(error, InvalidClient):  # failed authentication has its own audit event
            self._audit.emit("txn_token.denied", outcome="denied", reason=error.reason, source=call.source,
                             client_id=call.caller.client.client_id if call.caller else None, error=error.error)

    def parse_transaction_token_request(self, call: Call) -> None:
        request = parse_transaction_token_request(call.form, self.trust_domain)
        call.transaction_request = request
        # The subject checks of token exchange read the request in its own shape.
        call.exchange_request = TokenExchangeRequest(request.subject_token, request.subject_token_type,
                                                     request.scopes, None)

    def verify_subject(self, call: Call) -> Awaitable[None] | None:
        request = call.transaction_request
        assert request is not None
        if request.subject_token_type != TXN_TOKEN_TYPE:
            return self._exchange.verify_subject_token(call)
        registry = self._state.registry
        claims = verify_transaction_token(request.subject_token, registry.verification_keys, self._issuer,
                                          self.trust_domain)
        if claims is None:
            raise InvalidGrant("subject_token is not a transaction token of this server", reason="subject_token_invalid")
        if claims["exp"] <= call.now:
            raise InvalidGrant("subject_token has expired", reason="subject_token_expired")
        subject = registry.client_blocking(claims["sub"])
        if subject is not None and (not subject.client.enabled
                                    or is_revoked_by_client(claims.get("iat", 0), subject.client.revoked_before)):
            raise InvalidGrant("subject_token has been revoked", reason="subject_token_revoked")
        if claims.get("tenant") != call.authenticated.client.tenant:
            raise InvalidGrant("subject_token belongs to another tenant", reason="subject_token_tenant")
        call.claims = claims
        return None

    def _held(self, subject: dict[str, Any]) -> tuple[str, ...]:
        if isinstance(subject.get("scope"), str):
            return tuple(subject["scope"].split())
        entry = self._state.registry.client_blocking(subject["client_id"])  # a federated subject: its client's grants
        held: list[str] = []
        for grant in entry.grants if entry is not None else ():
            held.extend(s for s in grant.scopes if s not in held)
        return tuple(held)

    def issue(self, call: Call) -> None:
        request, subject = call.transaction_request, call.claims
        assert request is not None and subject is not None
        held = self._held(subject)
        scopes = narrow_scopes(request.scopes, held, held)
        registry = self._state.registry
        signer = registry.signers.get(DEFAULT_ALG) or next(iter(registry.signers.values()), None)
        if signer is None:
            raise TemporarilyUnavailable("no active signing key", reason="no_signing_key")
        replacing = request.subject_token_type == TXN_TOKEN_TYPE
        iat = int(call.now)
        exp = min(iat + self._settings.lifetime, int(subject["exp"]))
        if exp <= iat:
            raise InvalidGrant("subject_token has expired", reason="subject_token_expired")
        client = call.authenticated.client
        payload: dict[str, Any] = {"iss": self._issuer, "aud": self.trust_domain, "iat": iat, "exp": exp,
                                   "txn": subject["txn"] if replacing else _new_txn(), "sub": subject["sub"],
                                   "scope": " ".join(scopes), "req_wl": client.client_id}
        tctx = subject.get("tctx") if replacing else request.request_details
        rctx = request.request_context if request.request_context is not None else (
            subject.get("rctx") if replacing else None)
        if tctx is not None:
            payload["tctx"] = tctx
        if rctx is not None:
            payload["rctx"] = rctx
        if client.tenant is not None:
            payload["tenant"] = client.tenant
        header = encode_header({"alg": signer.alg, "kid": signer.kid, "typ": TXN_TYP})
        token = signer.sign_jws(header, json.dumps(payload, separators=(",", ":")).encode("ascii"))
        call.issued = IssuedToken(token, exp - iat, payload["scope"], payload["txn"], (self.trust_domain,),
                                  signer.kid, "N_A", issued_token_type=TXN_TOKEN_TYPE)


class TokenExchangeRouter:
    """`grant_type` token-exchange: the use case per `requested_token_type` (Txn-Tokens, else access tokens)."""

    def __init__(self, access: TokenExchangeGrant, transaction: TransactionTokenGrant) -> None:
        self._access = access
        self._transaction = transaction

    async def run(self, call: Call) -> IssuedToken:
        if is_transaction_token_request(call.form):
            return await self._transaction.run(call)
        return await self._access.run(call)
