"""Introspection (RFC 7662 §2) and revocation (RFC 7009 §2) of Warden's own tokens, as steps.

    introspection: authentication steps → read_token → verify_token → decide_what_caller_may_learn
    revocation:    authentication steps → read_token → verify_token → refuse_foreign_token → revoke

Both callers must authenticate (RFC 7662 §2.1, RFC 7009 §2.1). Revocation: an invalid, unknown
or expired token is answered 200 (§2.2): nothing to revoke, no oracle. A valid token issued to
another client is refused (§2.1, §2.2.1) and stays active, with RFC 6749 §5.2's
`unauthorized_client`: the caller did authenticate (so not `invalid_client`), the request is well
formed (not `invalid_request`), and it is this client that may not act on the token;
`invalid_grant` describes grants at the token endpoint, `unsupported_token_type` token types. The
refusal tells the caller nothing it cannot read from the token itself (signature against the
public JWKS, `client_id`, `exp`), so it is decided on those alone, never on server-side state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from warden.core.revocation import RevokedToken, status_entry_of_jti
from warden.protocol.access_token import verify_own_token
from warden.protocol.errors import UnauthorizedClient
from warden.protocol.revocation import parse_token_reference
from warden.services.audit import AuditSink
from warden.services.call import Call, ServingState
from warden.services.caller_auth import AuthenticatedEndpoint, CallerAuthentication
from warden.services.steps import Step
from warden.services.token_state import atoken_state, token_audiences

__all__ = ["Introspection", "Revocation"]


class _TokenLookup(AuthenticatedEndpoint):
    steps: Sequence[Step[Call]] = ()

    async def run(self, call: Call) -> None:
        await self._run_steps(self.steps, call)

    @staticmethod
    def read_token(call: Call) -> None:
        call.token_reference = parse_token_reference(call.form)

    def verify_token(self, call: Call) -> None:
        assert call.token_reference is not None
        call.claims = verify_own_token(call.token_reference.token, self._state.registry.verification_keys,
                                       self._issuer)


class Introspection(_TokenLookup):
    """`run` leaves in `call.token_state` what the caller may learn: `active` (with `call.claims`) or why not."""

    def __init__(self, state: ServingState, auth: CallerAuthentication, issuer: str, audit: AuditSink) -> None:
        super().__init__(state, auth, issuer, audit)
        self.steps = (*auth.steps, self.read_token, self.verify_token, self.decide_what_caller_may_learn)

    async def decide_what_caller_may_learn(self, call: Call) -> None:
        claims = call.claims
        if claims is None:
            call.token_state = "invalid"
            return
        state = await atoken_state(claims, self._state.registry, call.now)
        if state == "active":
            # T57: a caller learns about its own tokens and tokens for APIs it is granted, nothing else.
            caller = call.authenticated
            caller_apis = {g.api for g in caller.grants}
            if claims["client_id"] != caller.client.client_id and not caller_apis & set(token_audiences(claims)):
                state = "not_authorized"
        call.token_state = state


class Revocation(_TokenLookup):
    """`run` revokes the named token if it is the caller's and still valid; `call.token_state` says
    `revoked` or `ignored`."""

    def __init__(self, state: ServingState, auth: CallerAuthentication, issuer: str, audit: AuditSink) -> None:
        super().__init__(state, auth, issuer, audit)
        self.steps = (*auth.steps, self.read_token, self.verify_token, self.refuse_foreign_token, self.revoke)

    def refuse_foreign_token(self, call: Call) -> None:
        claims, caller = call.claims, call.authenticated.client.client_id
        if claims is not None and claims["exp"] > call.now and claims["client_id"] != caller:
            self._audit.emit("token.revocation_refused", outcome="denied", reason="foreign_token", actor=caller,
                             client_id=caller, source=call.source, jti=claims["jti"],
                             tenant=call.authenticated.client.tenant)
            raise UnauthorizedClient("the token was not issued to this client", reason="foreign_token")

    async def revoke(self, call: Call) -> None:
        claims = call.claims
        call.token_state = "ignored"
        if claims is None or claims["exp"] <= call.now:
            return
        caller = call.authenticated.client.client_id
        entry = status_entry_of_jti(claims["jti"])
        revoked = RevokedToken(jti=claims["jti"], client_id=caller, exp=float(claims["exp"]),
                               status_list=entry[0] if entry else None, status_idx=entry[1] if entry else None)
        store, registry = self._state.current_store(), self._state.registry

        def record() -> None:  # in a thread: a registry refresh may hold the registry's lock for a while
            store.revoke_token(revoked)
            registry.add_revoked(revoked)  # effective here at once, elsewhere via the change log

        await asyncio.to_thread(record)
        self._audit.emit("token.revoked", actor=caller, client_id=caller, source=call.source, jti=revoked.jti,
                         tenant=call.authenticated.client.tenant)
        call.token_state = "revoked"
