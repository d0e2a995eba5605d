"""Dynamic client registration (RFC 7591) and its management (RFC 7592), as lists of named steps.

    register:  read_bearer_token → refuse_if_throttled → find_initial_access_token
               → parse_registration_request → apply_policy → check_client_metadata → register
    manage:    read_bearer_token → refuse_if_throttled → verify_registration_access_token
               → read | update | delete
               (update: parse_registration_request → check_update → apply_policy
                → check_client_metadata → update)

The initial access token (`Authorization: Bearer`, RFC 7591 §3) is looked up by its keyed hash and
must be active; its policy caps the grants (core.registration: beyond it is refused with
`invalid_client_metadata`, never narrowed), sets the tenant and whether the client waits for
approval. Spending a use and creating the client are one transaction (`Store.register_client`), so
concurrent registrations cannot exceed `max_uses`. The registration access token answers for one
client only; an update is held to the policy the client was registered under (SECURITY.md T70), may
not change `token_endpoint_auth_method` (no downgrade), and a disabled client's token is refused,
so it cannot be used to re-enable or otherwise change the client (T71). Fields the client may set
are `client_name`, `scope`/`resources`, `jwks`/`jwks_uri` and `dpop_bound_access_tokens`; everything
else about the client stays the operator's.

Every refusal is audited (`client.registration_denied`, with the reason); bad or missing tokens are
`invalid_token` (401, `WWW-Authenticate: Bearer error="invalid_token"`) and count against the
source's failed-authentication budget (`limits.failed_auth_per_minute`, as at the token endpoint),
after which the source gets 429 until the budget refills.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from warden.core.client import Client
from warden.core.client_metadata import ClientMetadata, parse_client_metadata, render_client_metadata
from warden.core.registration import ClientRegistration, PolicyGrant, RegistrationToken, decide_grants
from warden.errors import ConfigError
from warden.protocol.errors import InvalidClientMetadata, InvalidRequest, InvalidToken, OAuthError, SlowDown
from warden.protocol.reasons import Reason
from warden.protocol.registration import (
    RegistrationRequest,
    parse_registration_request,
    render_client_information,
)
from warden.services.admin import Admin, GrantSpec
from warden.services.audit import AuditSink
from warden.services.auth_throttle import FailedAuthThrottle
from warden.services.steps import Step, run_steps

__all__ = ["ClientRegistrations", "RegistrationCall"]

_DEFAULT_NAME = "registered client"
_BAD_INITIAL = "the initial access token is missing, invalid, expired or used up"
_BAD_ACCESS = "the registration access token is not valid for this client"
_IDENTITY = "\x00registration"  # the throttle's identity for registration tokens (no client id has a NUL)


@dataclass(slots=True)
class RegistrationCall:
    method: str
    body: bytes
    content_type: bytes | None
    authorization: str | None
    authorization_repeated: bool
    source: str
    now: float
    client_id: str | None = None  # RFC 7592: the client its registration_client_uri names
    # filled in by the steps
    bearer: str | None = None
    token: RegistrationToken | None = None
    registration: ClientRegistration | None = None
    client: Client | None = None
    request: RegistrationRequest | None = None
    grants: list[PolicyGrant] | None = None
    metadata: ClientMetadata | None = None
    status: int = 200
    response: dict[str, Any] | None = None

    def __repr__(self) -> str:  # never the body or the bearer token
        return f"RegistrationCall(method={self.method!r}, client_id={self.client_id!r}, source={self.source!r})"


def _refuse_metadata(description: str, reason: Reason = "client_metadata") -> InvalidClientMetadata:
    return InvalidClientMetadata(description, reason=reason)


class ClientRegistrations:
    def __init__(self, admin: Callable[[str], Admin], issuer: str, audit: AuditSink, *, dev_mode: bool = False,
                 on_registered: Callable[[], Awaitable[None]] | None = None,
                 throttle: FailedAuthThrottle | None = None) -> None:
        """`admin` builds the admin use cases acting as an actor; `on_registered` runs after each
        registration (the server refreshes its registry, so this process knows the client at once);
        `throttle` budgets failed token presentations per source."""
        self._admin = admin
        self._throttle = throttle
        self._issuer = issuer
        self._audit = audit
        self._dev_mode = dev_mode
        self._on_registered = on_registered
        self.register_steps: tuple[Step[RegistrationCall], ...] = (
            self.read_bearer_token, self.refuse_if_throttled, self.find_initial_access_token, self.parse_registration_request,
            self.apply_policy, self.check_client_metadata, self.register)
        manage: tuple[Step[RegistrationCall], ...] = (self.read_bearer_token, self.refuse_if_throttled,
                                                      self.verify_registration_access_token)
        self.manage_steps: dict[str, tuple[Step[RegistrationCall], ...]] = {
            "GET": (*manage, self.read),
            "PUT": (*manage, self.parse_registration_request, self.check_update, self.apply_policy,
                    self.check_client_metadata, self.update),
            "DELETE": (*manage, self.delete),
        }

    async def run(self, call: RegistrationCall) -> None:
        """Run the steps for `call` (POST registers; GET, PUT, DELETE manage `call.client_id`)."""
        steps = self.register_steps if call.client_id is None else self.manage_steps[call.method]
        try:
            await run_steps(steps, call)
        except OAuthError as exc:
            if isinstance(exc, InvalidToken) and self._throttle is not None:
                self._throttle.record_failure(call.source, _IDENTITY, call.now)
            self._audit.emit("client.registration_denied", outcome="denied", reason=exc.reason, error=exc.error,
                             source=call.source, method=call.method,
                             client_id=call.client_id[:128] if call.client_id else None,  # from the path
                             token_id=call.token.token_id if call.token else None)
            raise

    # shared steps --------------------------------------------------------------
    @staticmethod
    def read_bearer_token(call: RegistrationCall) -> None:
        if call.authorization_repeated:
            raise InvalidRequest("Authorization header is repeated", reason="duplicate_header")
        scheme, _, token = (call.authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken(_BAD_INITIAL if call.client_id is None else _BAD_ACCESS,
                               reason="registration_no_token")
        call.bearer = token.strip()

    def refuse_if_throttled(self, call: RegistrationCall) -> None:
        """429 before any token is looked up, once this source has spent its failure budget."""
        wait = self._throttle.wait(call.source, _IDENTITY, call.now) if self._throttle is not None else 0.0
        if wait > 0:
            raise SlowDown("too many failed registration attempts", reason="failed_auth_throttled", retry_after=wait)

    def parse_registration_request(self, call: RegistrationCall) -> None:
        call.request = parse_registration_request(call.body, call.content_type)

    def check_client_metadata(self, call: RegistrationCall) -> None:
        """Keys and DPoP binding through the same rules as the operator's (core.client_metadata)."""
        assert call.request is not None
        try:
            parsed = parse_client_metadata(dict(call.request.metadata or {}), allow_loopback_http=self._dev_mode)
        except (ValueError, TypeError) as exc:
            raise _refuse_metadata(str(exc)) from None
        base = call.client.metadata if call.client is not None else ClientMetadata()
        # only what the client may set; conditional access, approval and the rest stay as they are
        call.metadata = dataclasses.replace(base, jwks=parsed.jwks, jwks_uri=parsed.jwks_uri,
                                            dpop_bound_access_tokens=parsed.dpop_bound_access_tokens)

    @staticmethod
    def apply_policy(call: RegistrationCall) -> None:
        """The grants the request may have: within the initial access token's policy when registering,
        the policy the client was registered under when updating (T70)."""
        assert call.request is not None
        if call.registration is not None:
            policy: Sequence[PolicyGrant] = call.registration.grants
        else:
            assert call.token is not None
            policy = call.token.grants
        try:
            call.grants = decide_grants(policy, call.request.scopes, call.request.resources)
        except ValueError as exc:
            raise _refuse_metadata(str(exc), "registration_policy") from None
        if not call.grants:
            raise _refuse_metadata("the request leaves the client no grant", "registration_policy")

    def _render(self, call: RegistrationCall, client: Client, grants: Sequence[PolicyGrant], access_token: str,
                secret: str | None = None) -> dict[str, Any]:
        return render_client_information(
            client_id=client.client_id, issued_at=client.created_at, auth_method=client.auth_method.value,
            client_name=client.name, grants=list(grants), metadata=json.loads(render_client_metadata(client.metadata)),
            registration_access_token=access_token,
            registration_client_uri=f"{self._issuer}/oauth2/register/{client.client_id}", client_secret=secret)

    # registration (RFC 7591 §3) ------------------------------------------------
    async def find_initial_access_token(self, call: RegistrationCall) -> None:
        assert call.bearer is not None
        token = await asyncio.to_thread(self._admin("registration").find_registration_token, call.bearer)
        if token is None:
            raise InvalidToken(_BAD_INITIAL, reason="registration_unknown_token")
        call.token = token
        state = token.state(call.now)
        if state != "active":
            reasons: dict[str, Reason] = {"expired": "registration_token_expired",
                                          "revoked": "registration_token_revoked",
                                          "used_up": "registration_token_used_up"}
            raise InvalidToken(_BAD_INITIAL, reason=reasons[state])

    async def register(self, call: RegistrationCall) -> None:
        token, request = call.token, call.request
        assert token is not None and request is not None and call.grants is not None and call.metadata is not None
        admin = self._admin(f"registration:{token.token_id}")
        try:
            made = await asyncio.to_thread(admin.register_client, token, request.client_name or _DEFAULT_NAME,
                                           request.token_endpoint_auth_method, call.metadata, call.grants)
        except ConfigError as exc:  # e.g. an API of the policy lost a scope since the token was made
            raise _refuse_metadata(str(exc)) from None
        if made is None:  # used up, expired or revoked since it was read: the store had the last word
            raise InvalidToken(_BAD_INITIAL, reason="registration_token_used_up")
        client, secret, access_token = made
        if self._on_registered is not None:
            await self._on_registered()
        call.status = 201
        call.response = self._render(call, client, call.grants, access_token, secret.secret if secret else None)

    # management (RFC 7592) -----------------------------------------------------
    async def verify_registration_access_token(self, call: RegistrationCall) -> None:
        assert call.bearer is not None and call.client_id is not None
        admin = self._admin(f"client:{call.client_id}")

        def load() -> tuple[ClientRegistration | None, Client | None]:
            registration = admin.verify_registration_access_token(call.client_id or "", call.bearer or "")
            return registration, admin.store.load_client(call.client_id or "") if registration else None

        registration, client = await asyncio.to_thread(load)
        if registration is None or client is None:
            raise InvalidToken(_BAD_ACCESS, reason="registration_access_token")  # RFC 7592 §2.1
        if not client.enabled:  # T71: a disabled client cannot be read, changed or re-enabled this way
            raise InvalidToken(_BAD_ACCESS, reason="client_disabled")
        call.registration, call.client = registration, client

    async def _grants_of(self, client_id: str) -> list[PolicyGrant]:
        admin = self._admin(f"client:{client_id}")
        grants = await asyncio.to_thread(admin.store.load_grants, client_id)
        return [(g.api, g.scopes) for g in grants]

    async def read(self, call: RegistrationCall) -> None:
        assert call.client is not None and call.bearer is not None
        # Only hashes are kept, so the client secret cannot be shown again; the registration access
        # token is the one just presented (RFC 7592 §3 returns it).
        call.response = self._render(call, call.client, await self._grants_of(call.client.client_id), call.bearer)

    async def check_update(self, call: RegistrationCall) -> None:
        """RFC 7592 §2.2: the body names this client; a secret, if sent, is the current one; the
        authentication method stays (a new method is a new registration)."""
        request, client = call.request, call.client
        assert request is not None and client is not None
        if request.client_id != client.client_id:
            raise _refuse_metadata("client_id must be this client's")
        if request.token_endpoint_auth_method != client.auth_method.value:
            raise _refuse_metadata("token_endpoint_auth_method cannot change; register a new client")
        if request.client_secret is not None:
            admin = self._admin(f"client:{client.client_id}")
            if not await asyncio.to_thread(admin.verify_client_secret, client.client_id, request.client_secret):
                raise _refuse_metadata("client_secret is not the client's current secret")

    async def update(self, call: RegistrationCall) -> None:
        client, request = call.client, call.request
        assert client is not None and request is not None and call.grants is not None and call.bearer is not None
        admin = self._admin(f"client:{client.client_id}")

        def change() -> Client:
            admin.update_client(client.client_id, name=request.client_name or _DEFAULT_NAME,
                                metadata=call.metadata, grants=[GrantSpec(a, s) for a, s in call.grants or []])
            return admin.client(client.client_id)

        try:
            updated = await asyncio.to_thread(change)
        except ConfigError as exc:
            raise _refuse_metadata(str(exc)) from None
        call.response = self._render(call, updated, call.grants, call.bearer)

    async def delete(self, call: RegistrationCall) -> None:
        assert call.client is not None
        await asyncio.to_thread(self._admin(f"client:{call.client.client_id}").delete_client, call.client.client_id)
        call.status = 204
