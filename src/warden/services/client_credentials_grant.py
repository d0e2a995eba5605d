"""The token endpoint's client credentials grant (RFC 6749 §4.4) as a list of named steps.

    require_serving → authentication steps (caller_auth) → enforce_rate_limit → parse_token_request
    → wait_out_revocation_window → verify_dpop_proof → assign_status → issue

Audit of the outcome happens once, after the steps; metrics are the HTTP layer's. Another grant
type (token exchange, say) is another step list over the same `Call`.
"""

from __future__ import annotations

from warden.core.revocation import is_revoked_by_client
from warden.protocol.client_credentials import parse_token_request
from warden.protocol.errors import InvalidClient, OAuthError, SlowDown, TemporarilyUnavailable
from warden.protocol.mtls import certificate_thumbprint
from warden.services.audit import AuditSink
from warden.services.call import Call, ServingState
from warden.services.caller_auth import AuthenticatedEndpoint, CallerAuthentication
from warden.services.dpop_proofs import DPoPProofs
from warden.services.ratelimit import RateLimiter
from warden.services.status_lists import StatusAllocator
from warden.services.steps import Step, tracing_active
from warden.services.tokens import IssuedToken, decide_issuance, issue_token, sign_token
from warden.settings import LimitSettings

__all__ = ["ClientCredentialsGrant"]


def _status_steps(status: StatusAllocator | None) -> tuple[Step[Call], ...]:
    """The step that gives a token its Token Status List entry, when status lists are on."""
    return (status.assign_status,) if status is not None else ()


class ClientCredentialsGrant(AuthenticatedEndpoint):
    def __init__(self, state: ServingState, auth: CallerAuthentication, dpop: DPoPProofs,
                 rate_limiter: RateLimiter, limits: LimitSettings, issuer: str, audit: AuditSink,
                 status: StatusAllocator | None = None) -> None:
        """`status` gives each token its Token Status List entry; None leaves the claim out."""
        super().__init__(state, auth, issuer, audit)
        self._rate_limiter = rate_limiter
        self._limits = limits
        self._dpop = dpop
        self._status = status
        self.steps: tuple[Step[Call], ...] = self.grant_steps(self.parse_token_request, issue=self.issue)
        # With tracing on, issuance is two steps so that policy and signing are spans of their own.
        self.traced_steps: tuple[Step[Call], ...] = (*self.steps[:-1], self.apply_policy, self.sign)

    def grant_steps(self, parse: Step[Call], *verify: Step[Call], issue: Step[Call],
                    permission: Step[Call] | None = None, access_token: bool = True) -> tuple[Step[Call], ...]:
        """The step list of a token grant: serving, the caller's authentication and rate limit, the
        grant's `permission`, `parse`, the revocation window, `verify`, then for an `access_token` the
        DPoP proof and the status list entry, and `issue`."""
        return (self.require_serving, *self._auth.steps, self.enforce_rate_limit,
                *((permission,) if permission is not None else ()), parse, self.wait_out_revocation_window,
                *verify, *((self._dpop.verify_proof, *_status_steps(self._status)) if access_token else ()), issue)

    async def run(self, call: Call) -> IssuedToken:
        """Issue a token for `call`, or raise the OAuthError that refuses it (audited either way)."""
        await self._run_steps(self.traced_steps if tracing_active() else self.steps, call, traced=True)
        issued = call.issued
        assert issued is not None
        self._audit.emit("token.issued", client_id=call.authenticated.client.client_id, source=call.source, jti=issued.jti,
                         aud=list(issued.audiences), scope=issued.scope, kid=issued.kid,
                         tenant=call.authenticated.client.tenant)
        return issued

    def _refused(self, call: Call, error: OAuthError) -> None:
        if not isinstance(error, InvalidClient):  # failed authentication has its own audit event
            self._audit.emit("token.denied", outcome="denied", reason=error.reason, source=call.source,
                             client_id=call.caller.client.client_id if call.caller else None, error=error.error,
                             tenant=call.caller.client.tenant if call.caller else None)

    def require_serving(self, call: Call) -> None:
        if not self._state.is_serving():
            raise TemporarilyUnavailable("registry unavailable", reason="registry_stale")

    def enforce_rate_limit(self, call: Call) -> None:
        client = call.authenticated.client
        if client.rate_limit is not None:  # a client's own limit allows bursts of two seconds' worth
            rate, burst = client.rate_limit, max(1.0, 2 * client.rate_limit)
        else:
            rate, burst = self._limits.client_rate, float(self._limits.client_burst)
        wait = self._rate_limiter.take(client.client_id, rate, burst, call.now)
        if wait > 0:
            raise SlowDown("token request rate limit reached", reason="client_rate_limited", retry_after=wait)

    @staticmethod
    def parse_token_request(call: Call) -> None:
        call.token_request = parse_token_request(call.form)

    @staticmethod
    def wait_out_revocation_window(call: Call) -> None:
        # A token issued in the revoking second would be born inactive; make the client wait it out.
        if is_revoked_by_client(int(call.now), call.authenticated.client.revoked_before):
            raise TemporarilyUnavailable("tokens for this client were just revoked", reason="revocation_window")

    def apply_policy(self, call: Call) -> None:
        assert call.token_request is not None
        cert = call.certificate
        call.decided = decide_issuance(call.authenticated, call.token_request, self._state.registry, self._issuer,
                                       call.proof.jkt if call.proof else None,
                                       certificate_thumbprint(cert) if cert else None)

    def sign(self, call: Call) -> None:
        assert call.decided is not None
        prepared, cnf, signer = call.decided
        call.issued = sign_token(prepared, cnf, signer, call.now, call.status)

    def issue(self, call: Call) -> None:
        assert call.token_request is not None
        cert = call.certificate
        call.issued = issue_token(call.authenticated, call.token_request, self._state.registry, self._issuer, call.now,
                                  jkt=call.proof.jkt if call.proof else None,
                                  x5t=certificate_thumbprint(cert) if cert else None, status=call.status)
