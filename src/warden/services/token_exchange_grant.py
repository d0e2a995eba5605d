"""The token endpoint's token exchange grant (RFC 8693) as a list of named steps.

    require_serving → authentication steps (caller_auth) → enforce_rate_limit → require_permission
    → parse_exchange_request → wait_out_revocation_window → verify_subject_token → verify_dpop_proof
    → assign_status → issue

The list is laid out by `ClientCredentialsGrant.grant_steps`, as every token grant's is, and the steps
shared with the client credentials grant are that grant's own; this module adds what is particular
to an exchange:

- Permission: the client's metadata must say `token_exchange` (else `unauthorized_client`, §2.2.2).
- The subject token is a Warden access token: signed by this server's keys (`verify_own_token`), not
  expired, not revoked (by `jti`, by client, through any client of its own chain: `token_state`,
  from the registry that also decides its status list bits), in the requesting client's tenant.
  Any failure is `invalid_grant` (§2.2.2).
- Or the subject token is a federated token from a trusted issuer (`[[trusted_issuers]]`): verified as
  a workload-identity assertion is (keys, `aud`, lifetime; `assertion_auth`), it stands for the one
  client bound to its (`iss`, `sub`) and claims, which becomes the subject (`sub`); what that client
  is granted at the target is what the subject "holds". Not single use: it authenticates nobody.
- The target (`resource`/`audience`) must be granted to the requesting client (`invalid_target`),
  and `scope` only narrows: every scope issued is in the subject token's scope and granted to
  the requesting client at the target (`invalid_scope`). Without `scope`, the scopes both allow.
- The issued token keeps the subject's `sub` (and the subject's `client_id` is not carried: the
  token's `client_id` is the requesting client, §4.3), names the requester as the current actor in
  `act` with the subject's own `act` nested under it (§4.1), bounded by
  `token_exchange.max_act_depth`; it never outlives the subject token; it takes its own status
  list entry from the requester's block, so revoking the requesting client ends it everywhere.
- Audit: `token.exchanged` with the subject, the whole actor chain and both `jti`s; refusals are
  `token.exchange_denied`. Never a token.
"""

from __future__ import annotations

import binascii
import json
import os
from collections.abc import Awaitable
from typing import Any

from warden.core.revocation import is_revoked_by_client
from warden.jose import JoseError, parse_compact
from warden.protocol.access_token import verify_own_token
from warden.protocol.client_assertion import MAX_ASSERTION_BYTES
from warden.protocol.errors import (
    InvalidClient,
    InvalidGrant,
    OAuthError,
    TemporarilyUnavailable,
    UnauthorizedClient,
)
from warden.protocol.mtls import certificate_thumbprint
from warden.protocol.token_exchange import (
    ACCESS_TOKEN_TYPE,
    act_chain,
    narrow_scopes,
    nest_actor,
    parse_token_exchange_request,
)
from warden.services.assertion_auth import AssertionAuthenticator
from warden.services.audit import AuditSink
from warden.services.call import Call, ServingState
from warden.services.caller_auth import AuthenticatedEndpoint, CallerAuthentication
from warden.services.client_credentials_grant import ClientCredentialsGrant
from warden.services.steps import Step
from warden.services.token_state import token_state
from warden.services.tokens import IssuedToken, token_binding, token_decision
from warden.settings import TokenExchangeSettings

__all__ = ["TokenExchangeGrant"]

_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _new_jti() -> str:
    return binascii.b2a_base64(os.urandom(18), newline=False).translate(_URLSAFE).decode("ascii")


class TokenExchangeGrant(AuthenticatedEndpoint):
    def __init__(self, state: ServingState, auth: CallerAuthentication, base: ClientCredentialsGrant,
                 assertions: AssertionAuthenticator, settings: TokenExchangeSettings, issuer: str,
                 audit: AuditSink) -> None:
        """`base` lends the steps both grants share (DPoP and the status list entry too);
        `assertions` verifies federated subject tokens (workload identity)."""
        super().__init__(state, auth, issuer, audit)
        self._assertions = assertions
        self._settings = settings
        self.steps: tuple[Step[Call], ...] = base.grant_steps(
            self.parse_exchange_request, self.verify_subject_token, issue=self.issue,
            permission=self.require_permission)

    async def run(self, call: Call) -> IssuedToken:
        """Issue the exchanged token for `call`, or raise the OAuthError that refuses it (audited either way)."""
        await self._run_steps(self.steps, call, traced=True)
        issued, subject = call.issued, call.claims
        assert issued is not None and subject is not None
        requester = call.authenticated.client.client_id
        self._audit.emit("token.exchanged", client_id=requester, source=call.source, jti=issued.jti,
                         subject=subject["sub"], subject_client_id=subject["client_id"], subject_jti=subject["jti"],
                         subject_issuer=subject["iss"],
                         act=[requester, *act_chain(subject.get("act"))], aud=list(issued.audiences),
                         scope=issued.scope, kid=issued.kid)
        return issued

    def _granted(self, client_id: str, audiences: tuple[str, ...]) -> tuple[str, ...]:
        entry = self._state.registry.client_blocking(client_id)
        grants = {g.api: g.scopes for g in entry.grants} if entry is not None else {}
        held: tuple[str, ...] | None = None
        for aud in audiences:
            scopes = grants.get(aud, ())
            held = scopes if held is None else tuple(s for s in held if s in scopes)
        return held or ()

    def _refused(self, call: Call, error: OAuthError) -> None:
        if not isinstance(error, InvalidClient):  # failed authentication has its own audit event
            self._audit.emit("token.exchange_denied", outcome="denied", reason=error.reason, source=call.source,
                             client_id=call.caller.client.client_id if call.caller else None, error=error.error,
                             subject_jti=self._subject_jti(call))

    @staticmethod
    def _subject_jti(call: Call) -> str | None:
        jti = call.claims.get("jti") if call.claims is not None else None
        return jti if isinstance(jti, str) else None

    def require_permission(self, call: Call) -> None:
        if not self._settings.enabled:
            raise UnauthorizedClient("token exchange is not enabled on this server",
                                     reason="token_exchange_not_allowed")
        if not call.authenticated.client.metadata.token_exchange:
            raise UnauthorizedClient("this client may not use token exchange", reason="token_exchange_not_allowed")

    @staticmethod
    def parse_exchange_request(call: Call) -> None:
        call.exchange_request = parse_token_exchange_request(call.form)

    def verify_subject_token(self, call: Call) -> Awaitable[None] | None:
        request = call.exchange_request
        assert request is not None
        if self._assertions.trusted and self._names_trusted_issuer(request.subject_token):
            return self._verify_federated(call, request.subject_token)
        self._verify_own(call, request.subject_token)
        return None

    def _names_trusted_issuer(self, token: str) -> bool:
        """Whether an (unverified) token claims a trusted issuer other than this server: a federated subject."""
        try:
            iss = parse_compact(token, max_bytes=MAX_ASSERTION_BYTES).claims().get("iss")
        except JoseError:
            return False
        return isinstance(iss, str) and iss != self._issuer and iss in self._assertions.trusted

    async def _verify_federated(self, call: Call, token: str) -> None:
        """A platform token of a trusted issuer stands for the one client it is bound to as a workload
        identity (the binding rules of `assertion_auth`); that client is the subject."""
        registry = self._state.registry
        try:
            found = await self._assertions.verify_platform_token(token, registry, call.now)
        except InvalidClient as exc:
            if exc.reason == "assertion_expired":
                raise InvalidGrant("subject_token has expired", reason="subject_token_expired") from None
            raise InvalidGrant("subject_token is not a valid token of a trusted issuer",
                               reason="subject_token_invalid") from None
        verified, entry = found if found is not None else (None, None)
        if verified is None or entry is None:
            raise InvalidGrant("subject_token is not bound to a client of this server", reason="subject_token_invalid")
        client = entry.client
        iat = verified.claims.get("iat")
        if not client.enabled or (isinstance(iat, (int, float)) and not isinstance(iat, bool)
                                  and is_revoked_by_client(iat, client.revoked_before)):
            raise InvalidGrant("subject_token has been revoked", reason="subject_token_revoked")
        if int(verified.exp) <= int(call.now):
            raise InvalidGrant("subject_token has expired", reason="subject_token_expired")
        call.claims = {"iss": verified.iss, "sub": client.client_id, "client_id": client.client_id,
                       "jti": verified.jti, "exp": int(verified.exp), "tenant": client.tenant}
        self._check_chain(call, call.claims)

    def _verify_own(self, call: Call, token: str) -> None:
        registry = self._state.registry
        claims = verify_own_token(token, registry.verification_keys, self._issuer)
        if claims is None or not isinstance(claims.get("sub"), str) or not isinstance(claims.get("scope"), str):
            raise InvalidGrant("subject_token is not a valid access token of this server",
                               reason="subject_token_invalid")
        call.claims = claims
        state = token_state(claims, registry, call.now)
        if state == "expired":
            raise InvalidGrant("subject_token has expired", reason="subject_token_expired")
        if state == "invalid":
            raise InvalidGrant("subject_token is not a valid access token of this server",
                               reason="subject_token_invalid")
        if state != "active":
            raise InvalidGrant("subject_token has been revoked", reason="subject_token_revoked")
        self._check_chain(call, claims)

    def _check_chain(self, call: Call, claims: dict[str, Any]) -> None:
        if claims.get("tenant") != call.authenticated.client.tenant:
            raise InvalidGrant("subject_token belongs to another tenant", reason="subject_token_tenant")
        if len(act_chain(claims.get("act"))) + 1 > self._settings.max_act_depth:
            raise InvalidGrant("subject_token has been exchanged too many times", reason="act_depth_exceeded")

    def issue(self, call: Call) -> None:
        request, subject = call.exchange_request, call.claims
        assert request is not None and subject is not None
        entry, registry = call.authenticated, self._state.registry
        decision = token_decision(entry.grants, registry.apis, request.scopes, request.resources)
        if subject["iss"] == self._issuer:
            held = tuple(subject["scope"].split())
        else:  # a federated subject holds what its client is granted at the target
            held = self._granted(subject["client_id"], decision.audiences)
        scopes = narrow_scopes(request.scopes, decision.scopes, held)
        cert = call.certificate
        meta = entry.client.metadata
        cnf = token_binding(decision, meta.dpop_bound_access_tokens, meta.tls_client_certificate_bound_access_tokens,
                            call.proof.jkt if call.proof else None, certificate_thumbprint(cert) if cert else None)
        signer = registry.signers.get(decision.alg)
        if signer is None:
            raise TemporarilyUnavailable("no active signing key", reason="no_signing_key")
        iat = int(call.now)
        exp = min(iat + decision.ttl, int(subject["exp"]))  # never outlives the token it was exchanged from
        jti = _new_jti() + (call.status.jti_suffix() if call.status is not None else "")
        client_id = entry.client.client_id
        aud = decision.audiences
        payload: dict[str, object] = {
            "iss": self._issuer, "sub": subject["sub"], "client_id": client_id,
            "aud": aud[0] if len(aud) == 1 else list(aud), "scope": " ".join(scopes), "iat": iat, "exp": exp,
            "jti": jti, "act": nest_actor(client_id, act_chain(subject.get("act"))),
        }
        if entry.client.tenant is not None:
            payload["tenant"] = entry.client.tenant
        if cnf is not None:
            payload["cnf"] = cnf
        if call.status is not None:
            payload["status"] = {"status_list": {"idx": call.status.idx, "uri": call.status.uri}}
        token = signer.compact.sign(json.dumps(payload, separators=(",", ":")).encode("ascii"))
        token_type = "DPoP" if cnf is not None and "jkt" in cnf else "Bearer"
        call.issued = IssuedToken(token, exp - iat, " ".join(scopes), jti, aud, signer.kid, token_type,
                                  issued_token_type=ACCESS_TOKEN_TYPE)
