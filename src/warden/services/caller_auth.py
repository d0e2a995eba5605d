"""Authenticating the calling client (RFC 6749 §2.3, RFC 7523, RFC 8705 §2), as steps.

The token, introspection and revocation endpoints all start with these steps. Each method of
client authentication has its own module (`client_auth` for secrets, `assertion_auth` for JWT
assertions and workload identity, `tls_auth` for certificates); this module orders them, applies
the failed-authentication throttle around them (`auth_throttle`) and audits failures.

After the credentials, `enforce_client_conditions` applies the client's conditional access: a
client waiting for approval (dynamic registration) and a request from outside the client's
`allowed_ips` are refused like any failed authentication (`invalid_client`), the reason going
to audit and metrics only.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence

from cryptography.x509.verification import Store as CertificateStore

from warden.core.addresses import is_address_allowed
from warden.core.redaction import redact
from warden.protocol.client_auth import parse_client_auth
from warden.protocol.errors import InvalidClient, InvalidRequest, OAuthError, SlowDown
from warden.services.assertion_auth import AssertionAuthenticator
from warden.services.audit import AuditSink
from warden.services.auth_throttle import FailedAuthThrottle, claimed_identity
from warden.services.call import Call, ServingState
from warden.services.client_auth import authenticate_client
from warden.services.key_sources import KeySources
from warden.services.steps import Step, run_steps, run_traced_steps, tracing_active
from warden.services.tls_auth import authenticate_certificate

__all__ = ["AuthenticatedEndpoint", "CallerAuthentication"]

_SECURITY_REASONS = frozenset({"secret_expired", "secret_revoked"})
_FAILED = "client authentication failed"  # the description every authentication failure shares


class CallerAuthentication:
    """The authentication steps, and what to do when one of them fails."""

    def __init__(self, state: ServingState, throttle: FailedAuthThrottle, assertions: AssertionAuthenticator,
                 key_sources: KeySources, client_ca: CertificateStore | None, pepper: bytes,
                 on_secret_used: Callable[[str, float], None], audit: AuditSink,
                 on_superseded_secret_used: Callable[[], None] | None = None) -> None:
        self._state = state
        self._throttle = throttle
        self._assertions = assertions
        self._key_sources = key_sources
        self._client_ca = client_ca
        self._audit = audit
        # a client secret (or none, for a public client) is checked with these, wherever the entry comes from
        self._authenticate_secret = functools.partial(authenticate_client, pepper=pepper, on_secret_used=on_secret_used,
                                                      on_superseded=on_superseded_secret_used)
        self.steps: tuple[Step[Call], ...] = (
            self.refuse_repeated_authorization,
            self.read_credentials,
            self.refuse_if_throttled,
            self.verify_credentials,
            self.enforce_client_conditions,
        )

    @staticmethod
    def refuse_repeated_authorization(call: Call) -> None:
        if call.authorization_repeated:
            raise InvalidRequest("Authorization header is repeated", reason="duplicate_header")

    @staticmethod
    def read_credentials(call: Call) -> None:
        """What the request presents (one method only, RFC 6749 §2.3), and the identity it claims."""
        call.presented = parse_client_auth(call.authorization, call.form, call.query_names,
                                           has_certificate=call.certificate is not None)
        call.identity = claimed_identity(call.presented)

    def refuse_if_throttled(self, call: Call) -> None:
        """429 before any credential naming this identity is evaluated, once this source has spent
        that identity's failure budget (see `warden.services.auth_throttle`)."""
        refusal = self._throttled(call)
        if refusal is not None:
            raise refusal

    def _throttled(self, call: Call) -> SlowDown | None:
        wait = self._throttle.wait(call.source, call.identity, call.now)
        if wait <= 0:
            return None
        return SlowDown("too many failed authentication attempts", reason="failed_auth_throttled", retry_after=wait)

    def verify_credentials(self, call: Call) -> Awaitable[None] | None:
        presented = call.presented
        assert presented is not None
        registry = self._state.registry
        if presented.assertion is not None or (presented.certificate_used and call.certificate is not None):
            return self._verify_remote(call)
        entry = registry.clients.get(presented.client_id)
        if entry is None and not registry.is_known_absent(presented.client_id):
            return self._verify_cold_client(call)  # a partial registry's miss: load it from the store
        call.caller = self._authenticate_secret(presented, entry, now=call.now)
        return None

    async def _verify_cold_client(self, call: Call) -> None:
        presented = call.presented
        assert presented is not None
        entry = await self._state.registry.client(presented.client_id)
        call.caller = self._authenticate_secret(presented, entry, now=call.now)

    async def _verify_remote(self, call: Call) -> None:
        """Assertions and certificates may need keys fetched from a `jwks_uri`, hence a coroutine."""
        presented, registry = call.presented, self._state.registry
        assert presented is not None
        if presented.assertion is not None:  # private_key_jwt or workload identity (RFC 7523)
            call.caller = await self._assertions.authenticate(presented, registry, call.now)
        else:  # mutual TLS (RFC 8705 §2)
            assert call.certificate is not None
            call.caller = await authenticate_certificate(presented, call.certificate, registry, self._client_ca,
                                                         self._key_sources)

    @staticmethod
    def enforce_client_conditions(call: Call) -> None:
        """Conditional access on the authenticated client: approval, then source address."""
        metadata = call.authenticated.client.metadata
        if metadata.pending_approval:
            raise InvalidClient(_FAILED, reason="client_pending_approval")
        if metadata.allowed_ips and not is_address_allowed(call.source, metadata.allowed_ips):
            raise InvalidClient(_FAILED, reason="source_not_allowed")

    def on_failure(self, call: Call, error: OAuthError) -> OAuthError:
        """Count a failed authentication against the throttle and audit it; answer the error to raise.

        Other errors pass through unchanged. A request that claims no identity could never pass, so
        once the source's anonymous budget is spent it is refused with 429 instead of answered.
        """
        if not isinstance(error, InvalidClient):
            return error
        if call.presented is None:  # call.identity is ANONYMOUS
            refusal = self._throttled(call)
            if refusal is not None:
                return refusal
        self._throttle.record_failure(call.source, call.identity, call.now)
        presented = call.presented
        client_id = (presented.client_id or None) if presented else None  # assertions may omit client_id
        known = self._state.registry.clients.get(client_id) if client_id else None
        self._audit.emit("client.authentication_failed", outcome="denied", reason=error.reason,
                         # redact before cutting, so a secret cut at the bound is not left unrecognisable
                         client_id=redact(client_id)[:128] if client_id else None, source=call.source,
                         severity="security" if error.reason in _SECURITY_REASONS else None,
                         tenant=known.client.tenant if known else None)  # audit only: answers stay identical
        return error


class AuthenticatedEndpoint:
    """A use case whose steps begin with the caller's authentication (token, introspection, revocation).

    Holds what such an endpoint works from, and runs its steps so that a refusal passes through
    `CallerAuthentication.on_failure` (the throttle and the audit of failed authentication) first.
    """

    def __init__(self, state: ServingState, auth: CallerAuthentication, issuer: str, audit: AuditSink) -> None:
        self._state = state
        self._auth = auth
        self._issuer = issuer
        self._audit = audit

    async def _run_steps(self, steps: Sequence[Step[Call]], call: Call, *, traced: bool = False) -> None:
        """`traced`: a span per step when tracing is active (`run_traced_steps`)."""
        runner = run_traced_steps if traced and tracing_active() else run_steps
        try:
            await runner(steps, call)
        except OAuthError as exc:
            error = self._auth.on_failure(call, exc)
            self._refused(call, error)
            if error is exc:
                raise
            raise error from None

    def _refused(self, call: Call, error: OAuthError) -> None:
        """Called with the error about to be raised; the endpoint may audit it."""
