"""Administrative use cases shared by the CLI, `warden apply` and the admin API.

Every change is validated by the core rules, written through the store (which
logs it for cache invalidation) and audited with the acting principal and the
tenant of what it changed. Plaintext secrets are returned exactly once, to the
caller that created them.

An `Admin` acts within an `AdminScope` (core/tenancy.py): a global admin (the CLI on
the local store, an admin client without a tenant) reaches everything; a tenant
admin only its tenant's clients and APIs (plus shared APIs, read-only), and objects
outside its reach are reported as not found. Readers go through the methods here
(`apis`, `clients`, `grants`, `secrets`, `revoked_tokens`), not the store, so the
scope applies to every caller, `apply`/`export` included.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets as _random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from warden.core.addresses import parse_allowed_ips
from warden.core.algorithms import DEFAULT_ALG
from warden.core.api import Api, validate_api
from warden.core.client import SECRET_METHODS, AuthMethod, Client, Grant, validate_client_id, validate_tenant
from warden.core.client_metadata import MAX_TOKEN_LIFETIME, ClientMetadata
from warden.core.clock import Clock
from warden.core.durations import MIN_TTL, render_duration
from warden.core.keys import SigningKey
from warden.core.registration import ClientRegistration, PolicyGrant, RegistrationToken
from warden.core.revocation import RevokedToken, status_entry_of_jti
from warden.core.secrets import (
    INITIAL_ACCESS_TOKEN_PREFIX,
    REGISTRATION_ACCESS_TOKEN_PREFIX,
    ClientSecret,
    SecretState,
    generate_secret,
    has_valid_checksum,
    hash_secret,
    secret_state,
)
from warden.core.tenancy import AdminScope, grant_crosses_tenant
from warden.errors import ConfigError, Conflict, Forbidden, NotFound
from warden.services.audit import AuditSink
from warden.services.client_auth import SUPPORTED_AUTH_METHODS
from warden.services.kek import KeyMaterial
from warden.services.key_backends import KeyBackends
from warden.services.keyring import Keyring
from warden.storage.contract import Store

if TYPE_CHECKING:
    from warden.services.console_login import LoginUrl

__all__ = ["UNCHANGED", "Admin", "GrantSpec", "NewSecret", "parse_grant_spec", "with_conditions"]


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()  # "leave as is", so that None can mean "clear"


@dataclass(frozen=True)
class GrantSpec:
    api: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class NewSecret:
    secret_id: str
    client_id: str
    secret: str
    expires_at: float | None

    def __repr__(self) -> str:
        return f"NewSecret(secret_id={self.secret_id!r}, client_id={self.client_id!r})"


def with_conditions(metadata: ClientMetadata, allowed_ips: Sequence[str] | _Unchanged = UNCHANGED,
                    max_token_lifetime: int | _Unchanged | None = UNCHANGED) -> ClientMetadata:
    """`metadata` with the given conditional-access fields replaced (validated like stored metadata)."""
    changes: dict[str, object] = {}
    if not isinstance(allowed_ips, _Unchanged):
        try:
            changes["allowed_ips"] = parse_allowed_ips(allowed_ips)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if not isinstance(max_token_lifetime, _Unchanged):
        if max_token_lifetime is not None and not MIN_TTL <= max_token_lifetime <= MAX_TOKEN_LIFETIME:
            raise ConfigError(f"max_token_lifetime must be between {render_duration(MIN_TTL)} and "
                              f"{render_duration(MAX_TOKEN_LIFETIME)}")
        changes["max_token_lifetime"] = max_token_lifetime
    return dataclasses.replace(metadata, **changes) if changes else metadata  # type: ignore[arg-type]


def parse_grant_spec(text: str) -> GrantSpec:
    """`IDENTIFIER=scope1,scope2` (the identifier may itself contain '=')."""
    api, sep, scopes = text.rpartition("=")
    if not sep or not api:
        raise ConfigError(f"grant {text!r}: expected IDENTIFIER=scope1,scope2")
    parsed = tuple(s.strip() for s in scopes.split(",") if s.strip())
    if not parsed:
        raise ConfigError(f"grant {text!r}: list at least one scope after '='")
    return GrantSpec(api, parsed)


class Admin:
    def __init__(self, store: Store, material: KeyMaterial, clock: Clock, audit: AuditSink,
                 actor: str = "cli", *, dev_mode: bool = False,
                 on_revoked: Callable[[str], None] | None = None, scope: AdminScope | None = None,
                 key_backends: KeyBackends | None = None) -> None:
        """`on_revoked` hears of each revocation made, with its kind (`token` or `client`), for metrics.
        `scope`: the caller's reach (default: global). `key_backends` says where new signing keys are
        made (default: the database)."""
        self.dev_mode = dev_mode  # allows plain-http jwks_uri on loopback
        self.scope = scope or AdminScope()
        self.store = store
        self._material = material
        self._clock = clock
        self._audit = audit
        self._actor = actor
        self._on_revoked = on_revoked
        self.keyring = Keyring(store, material, clock, audit, key_backends)

    def now(self) -> float:
        return self._clock.now()

    @property
    def tenant(self) -> str | None:
        """The caller's tenant; None for a global admin."""
        return self.scope.tenant

    def _tenant_refused(self, what: str, tenant: str | None) -> Forbidden:
        target = f"tenant {tenant}" if tenant is not None else "no tenant (shared)"
        return Forbidden(f"an admin of tenant {self.scope.tenant} cannot put {what} into {target}")

    def _check_tenant(self, what: str, tenant: str | None) -> None:
        """`tenant` is a well-formed name (ConfigError) this caller may put `what` into (Forbidden)."""
        if tenant is not None:
            try:
                validate_tenant(tenant)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if not self.scope.may_assign(tenant):
            raise self._tenant_refused(what, tenant)

    # APIs ---------------------------------------------------------------------
    def apis(self) -> list[Api]:
        """The APIs this caller sees: all, or the shared ones and its tenant's."""
        return [a for a in self.store.load_apis() if self.scope.sees_api(a)]

    def api(self, identifier: str) -> Api:
        api = self.store.load_api(identifier)
        if api is None or not self.scope.sees_api(api):
            raise NotFound(f"no API {identifier}")
        return api

    def save_api(self, identifier: str, scopes: Sequence[str], *, ttl: int = 900, alg: str = DEFAULT_ALG,
                 name: str = "", dpop_required: bool = False, cert_bound: bool = False,
                 tenant: str | _Unchanged | None = UNCHANGED) -> tuple[Api, bool]:
        """Create or update an API; returns (api, changed). `tenant`: None makes it shared; UNCHANGED
        keeps an existing API's and gives a new one the caller's tenant (none for a global admin)."""
        old = self.store.load_api(identifier)
        if old is not None and not self.scope.sees_api(old):
            raise Conflict(f"API identifier {identifier} is already in use")  # identifiers are global
        if old is not None and not self.scope.may_change_api(old):
            raise Forbidden(f"API {identifier} is shared by every tenant; only a global admin changes it")
        if isinstance(tenant, _Unchanged):
            tenant = old.tenant if old is not None else self.scope.default_tenant()
        if not self.scope.may_assign(tenant):
            raise self._tenant_refused(f"API {identifier}", tenant)
        api = Api(identifier=identifier, scopes=tuple(scopes), token_ttl=ttl, alg=alg, name=name,
                  created_at=old.created_at if old else self._clock.now(), dpop_required=dpop_required,
                  cert_bound=cert_bound, tenant=tenant)
        try:
            validate_api(api)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if old == api:
            return api, False
        if old is not None:
            removed = set(old.scopes) - set(api.scopes)
            in_use = [g for g in self.store.load_grants() if g.api == identifier and removed & set(g.scopes)]
            if in_use:
                raise ConfigError(f"scopes {', '.join(sorted(removed))} are still granted to "
                                  f"{len(in_use)} client(s); remove those grants first")
            if api.tenant is not None and api.tenant != old.tenant:
                clients = {c.client_id: c for c in self.store.load_clients()}
                outside = sorted(g.client_id for g in self.store.load_grants() if g.api == identifier
                                 and g.client_id in clients and clients[g.client_id].tenant != api.tenant)
                if outside:
                    raise ConfigError(f"API {identifier} is granted to {len(outside)} client(s) outside tenant "
                                      f"{api.tenant} (e.g. {outside[0]}); remove those grants first")
        self.store.save_api(api)
        self._audit.emit("api.updated" if old else "api.created", actor=self._actor, api=identifier,
                         scopes=list(api.scopes), ttl=ttl, alg=alg, tenant=api.tenant)
        return api, True

    def delete_api(self, identifier: str) -> None:
        api = self.api(identifier)
        if not self.scope.may_change_api(api):
            raise Forbidden(f"API {identifier} is shared by every tenant; only a global admin deletes it")
        self.store.delete_api(identifier)
        self._audit.emit("api.deleted", actor=self._actor, api=identifier, tenant=api.tenant)

    # clients ------------------------------------------------------------------
    def _grants(self, client_id: str, specs: Sequence[GrantSpec], tenant: str | None) -> list[Grant]:
        """Grant rows for a client of `tenant`; another tenant's API is unknown to a tenant admin."""
        seen: set[str] = set()
        grants = []
        for position, spec in enumerate(specs):
            api = self.store.load_api(spec.api)
            if api is None or not self.scope.sees_api(api):
                raise ConfigError(f"grant names unknown API {spec.api!r} (create it with `warden apis create`)")
            if grant_crosses_tenant(tenant, api):
                raise ConfigError(f"API {spec.api!r} belongs to tenant {api.tenant}; only clients of that "
                                  "tenant can be granted it")
            if spec.api in seen:
                raise ConfigError(f"API {spec.api!r} is granted twice; list all its scopes in one grant")
            seen.add(spec.api)
            unknown = [s for s in spec.scopes if s not in api.scopes]
            if unknown:
                raise ConfigError(f"API {spec.api!r} defines no scope {unknown[0]!r} "
                                  f"(it defines: {' '.join(api.scopes)})")
            grants.append(Grant(client_id, spec.api, tuple(spec.scopes), position))
        return grants

    def _new_secret(self, client_id: str, expires_at: float | None = None,
                    plaintext: str | None = None) -> tuple[ClientSecret, NewSecret]:
        if plaintext is None:
            plaintext = generate_secret(_random.token_bytes)
        elif len(plaintext) < 32 or len(plaintext) > 512:
            raise ConfigError(f"the secret given for client {client_id} must be 32-512 characters")
        secret = ClientSecret(secret_id=f"sec_{_random.token_hex(6)}", client_id=client_id,
                              hash=hash_secret(self._material.pepper, plaintext), created_at=self._clock.now(),
                              expires_at=expires_at, hint=plaintext[-4:])
        return secret, NewSecret(secret.secret_id, client_id, plaintext, expires_at)

    def create_client(self, name: str, grants: Sequence[GrantSpec], *,
                      auth_method: str = AuthMethod.CLIENT_SECRET_BASIC.value,
                      tenant: str | _Unchanged | None = UNCHANGED,
                      client_id: str | None = None, enabled: bool = True,
                      rate_limit: float | None = None,
                      metadata: ClientMetadata | None = None,
                      secret: str | None = None,
                      allowed_ips: Sequence[str] | _Unchanged = UNCHANGED,
                      max_token_lifetime: int | _Unchanged | None = UNCHANGED) -> tuple[Client, NewSecret | None]:
        """`secret`: use this plaintext (e.g. from the operator's vault) instead of generating one.
        `tenant`: UNCHANGED (the default) is the caller's own tenant, none for a global admin.
        `allowed_ips` and `max_token_lifetime` (conditional access) override what `metadata` says."""
        if isinstance(tenant, _Unchanged):
            tenant = self.scope.default_tenant()
        metadata = with_conditions(metadata or ClientMetadata(), allowed_ips, max_token_lifetime)
        client, grant_rows, secret_rows, new_secret = self._new_client(
            name, grants, auth_method=auth_method, tenant=tenant, client_id=client_id, enabled=enabled,
            rate_limit=rate_limit, metadata=metadata, secret=secret)
        self.store.create_client(client, grant_rows, secret_rows)
        self._audit.emit("client.created", actor=self._actor, client_id=client.client_id,
                         auth_method=client.auth_method.value, grants=[g.api for g in grant_rows], tenant=tenant)
        return client, new_secret

    def _new_client(self, name: str, grants: Sequence[GrantSpec], *, auth_method: str, tenant: str | None,
                    client_id: str | None, enabled: bool, rate_limit: float | None, metadata: ClientMetadata,
                    secret: str | None) -> tuple[Client, list[Grant], list[ClientSecret], NewSecret | None]:
        """A new client's rows, validated (the caller's tenant scope included); nothing is stored."""
        method = self._method(auth_method)
        self._check_metadata(method, metadata)
        client_id = client_id or _random.token_hex(12)
        try:
            validate_client_id(client_id)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self._check_tenant("a client", tenant)
        if not name.strip() or len(name) > 200:
            raise ConfigError("client name must be 1-200 characters")
        client = Client(client_id=client_id, name=name, auth_method=method, enabled=enabled, tenant=tenant,
                        rate_limit=rate_limit, created_at=self._clock.now(), metadata=metadata)
        grant_rows = self._grants(client_id, grants, tenant)
        secret_rows: list[ClientSecret] = []
        new_secret = None
        if secret is not None and method not in SECRET_METHODS:
            raise ConfigError(f"client {client_id} does not authenticate with a secret")
        if method in SECRET_METHODS:
            row, new_secret = self._new_secret(client_id, plaintext=secret)
            secret_rows.append(row)
        return client, grant_rows, secret_rows, new_secret

    @staticmethod
    def _check_metadata(method: AuthMethod, metadata: ClientMetadata) -> None:
        """Keys and identities belong to key-based methods only; a key-based client needs some."""
        has_keys = metadata.jwks is not None or metadata.jwks_uri is not None or bool(metadata.federated)
        if method is AuthMethod.PRIVATE_KEY_JWT and not has_keys:
            raise ConfigError("a private_key_jwt client needs --jwks, --jwks-uri or a federated identity")
        if method is AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH and metadata.jwks is None and metadata.jwks_uri is None:
            raise ConfigError("a self_signed_tls_client_auth client needs --jwks or --jwks-uri with its certificate key")
        if method is AuthMethod.TLS_CLIENT_AUTH and metadata.tls_client_auth is None:
            raise ConfigError("a tls_client_auth client needs one of --tls-subject-dn, --tls-san-dns, --tls-san-uri, "
                              "--tls-san-ip, --tls-san-email (RFC 8705 §2.1.2)")
        if method is not AuthMethod.TLS_CLIENT_AUTH and metadata.tls_client_auth is not None:
            raise ConfigError("a certificate subject applies to tls_client_auth clients only")
        if method in SECRET_METHODS and has_keys:
            raise ConfigError(f"{method.value} clients authenticate with a secret; keys and federated "
                              "identities need --auth-method private_key_jwt")

    @staticmethod
    def _method(name: str) -> AuthMethod:
        try:
            method = AuthMethod(name)
        except ValueError:
            raise ConfigError(f"unknown auth method {name!r}; expected one of "
                              f"{', '.join(m.value for m in AuthMethod)}") from None
        if method not in SUPPORTED_AUTH_METHODS:
            raise ConfigError(f"auth method {name} is not supported by this server yet; "
                              f"use {' or '.join(m.value for m in SUPPORTED_AUTH_METHODS)}")
        return method

    def update_client(self, client_id: str, *, name: str | None = None, enabled: bool | None = None,
                      tenant: str | _Unchanged | None = UNCHANGED, auth_method: str | None = None,
                      grants: Sequence[GrantSpec] | None = None,
                      rate_limit: float | _Unchanged | None = UNCHANGED,
                      metadata: ClientMetadata | None = None,
                      allowed_ips: Sequence[str] | _Unchanged = UNCHANGED,
                      max_token_lifetime: int | _Unchanged | None = UNCHANGED) -> bool:
        """Change the named attributes; return whether anything changed.

        `metadata` replaces the client's metadata, except `pending_approval`, which only
        `approve_client` clears; `allowed_ips` and `max_token_lifetime` then apply on top."""
        client = self.client(client_id)
        changes: dict[str, object] = {}
        if metadata is not None or not isinstance(allowed_ips, _Unchanged) or not isinstance(
                max_token_lifetime, _Unchanged):
            base = client.metadata if metadata is None else dataclasses.replace(
                metadata, pending_approval=client.metadata.pending_approval)
            metadata = with_conditions(base, allowed_ips, max_token_lifetime)
        if name is not None and name != client.name:
            changes["name"] = name
        if enabled is not None and enabled != client.enabled:
            changes["enabled"] = enabled
        if not isinstance(tenant, _Unchanged) and tenant != client.tenant:
            self._check_tenant(f"client {client_id}", tenant)
            changes["tenant"] = tenant
        if auth_method is not None and self._method(auth_method) is not client.auth_method:
            changes["auth_method"] = self._method(auth_method)
        if not isinstance(rate_limit, _Unchanged) and rate_limit != client.rate_limit:
            changes["rate_limit"] = rate_limit
        if metadata is not None and metadata != client.metadata:
            changes["metadata"] = metadata
        if "auth_method" in changes or "metadata" in changes:
            method = changes.get("auth_method", client.auth_method)
            # a client switched to a secret method has none until `warden clients secrets rotate`
            self._check_metadata(method, changes.get("metadata", client.metadata))  # type: ignore[arg-type]
        tenant_after: str | None = changes.get("tenant", client.tenant)  # type: ignore[assignment]
        # grants are checked against the tenant the client will have, before anything is written
        new = self._grants(client_id, grants, tenant_after) if grants is not None else None
        if new is None and "tenant" in changes:
            for grant in self.store.load_grants(client_id):
                api = self.store.load_api(grant.api)
                if api is not None and grant_crosses_tenant(tenant_after, api):
                    raise ConfigError(f"client {client_id} is granted API {grant.api!r} of tenant {api.tenant}; "
                                      "change its grants in the same update")
        changed = False
        if changes:
            self.store.update_client(dataclasses.replace(client, **changes))  # type: ignore[arg-type]
            event = {True: "client.enabled", False: "client.disabled"}.get(changes.get("enabled"),  # type: ignore
                                                                           "client.updated")
            self._audit.emit(event, actor=self._actor, client_id=client_id, fields=sorted(changes),
                             tenant=tenant_after)
            changed = True
        if new is not None and [(g.api, g.scopes, g.position) for g in new] != [
                (g.api, g.scopes, g.position) for g in self.store.load_grants(client_id)]:
            self.store.set_grants(client_id, new)
            self._audit.emit("client.grants_changed", actor=self._actor, client_id=client_id,
                             grants=[g.api for g in new], tenant=tenant_after)
            changed = True
        return changed

    def client(self, client_id: str) -> Client:
        """The client, if this caller sees it; another tenant's client is reported as missing."""
        client = self.store.load_client(client_id)
        if client is None or not self.scope.sees_client(client):
            raise NotFound(f"no client {client_id}")
        return client

    def clients(self) -> list[Client]:
        return [c for c in self.store.load_clients() if self.scope.sees_client(c)]

    def grants(self, client_id: str | None = None) -> list[Grant]:
        """Grants of one client (which must be visible), or of every client this caller sees."""
        if client_id is not None:
            self.client(client_id)
            return self.store.load_grants(client_id)
        if self.scope.is_global:
            return self.store.load_grants()
        visible = {c.client_id for c in self.clients()}
        return [g for g in self.store.load_grants() if g.client_id in visible]

    def delete_client(self, client_id: str) -> None:
        client = self.client(client_id)
        self.store.delete_client(client_id)
        self._audit.emit("client.deleted", actor=self._actor, client_id=client_id, tenant=client.tenant)

    def approve_client(self, client_id: str) -> bool:
        """Let a client registered with `--approval` authenticate; False if it was not pending."""
        client = self.client(client_id)
        if not client.metadata.pending_approval:
            return False
        self.store.update_client(dataclasses.replace(
            client, metadata=dataclasses.replace(client.metadata, pending_approval=False)))
        self._audit.emit("client.approved", actor=self._actor, client_id=client_id, tenant=client.tenant)
        return True

    # dynamic registration (RFC 7591 / 7592) -------------------------------------
    def create_registration_token(self, grants: Sequence[GrantSpec], *, max_uses: int | None = None,
                                  ttl: int | None = None, tenant: str | _Unchanged | None = UNCHANGED,
                                  approval: bool = False) -> tuple[RegistrationToken, str]:
        """A new initial access token and its plaintext (shown once): clients registered with it get
        at most `grants`, are placed in `tenant` (UNCHANGED: the caller's own) and, with `approval`,
        wait for `approve_client`. A tenant admin mints tokens for its own tenant only."""
        if isinstance(tenant, _Unchanged):
            tenant = self.scope.default_tenant()
        if not grants:
            raise ConfigError("list at least one --grant the registered clients may get")
        self._check_tenant("a registration token", tenant)
        rows = self._grants("registration", grants, tenant)  # the APIs and scopes must exist now
        if max_uses is not None and not 1 <= max_uses <= 1_000_000:
            raise ConfigError("--max-uses must be between 1 and 1000000")
        if ttl is not None and ttl <= 0:
            raise ConfigError("--ttl must be positive")
        plaintext = generate_secret(_random.token_bytes, INITIAL_ACCESS_TOKEN_PREFIX)
        now = self._clock.now()
        token = RegistrationToken(f"rt_{_random.token_hex(6)}", hash_secret(self._material.pepper, plaintext),
                                  tuple((g.api, g.scopes) for g in rows), now, tenant, approval, max_uses, 0,
                                  now + ttl if ttl else None, None, self._actor)
        self.store.save_registration_token(token)
        self._audit.emit("registration_token.created", actor=self._actor, token_id=token.token_id,
                         grants=[g.api for g in rows], tenant=tenant, approval=approval, max_uses=max_uses,
                         expires_at=token.expires_at)
        return token, plaintext

    def registration_tokens(self) -> list[RegistrationToken]:
        """The initial access tokens this caller sees: all, or its tenant's."""
        return [t for t in self.store.load_registration_tokens()
                if self.scope.is_global or t.tenant == self.scope.tenant]

    def revoke_registration_token(self, token_id: str) -> None:
        token = next((t for t in self.registration_tokens() if t.token_id == token_id), None)
        if token is None:
            raise NotFound(f"no registration token {token_id}")
        self.store.revoke_registration_token(token_id, self._clock.now())
        self._audit.emit("registration_token.revoked", actor=self._actor, token_id=token_id, tenant=token.tenant)

    def find_registration_token(self, plaintext: str) -> RegistrationToken | None:
        """The initial access token `plaintext` is, in any state; None if it is none of ours."""
        if not has_valid_checksum(plaintext, INITIAL_ACCESS_TOKEN_PREFIX):
            return None  # cheap refusal of garbage before any lookup
        return self.store.load_registration_token(hash_secret(self._material.pepper, plaintext))

    def register_client(self, token: RegistrationToken, name: str, auth_method: str, metadata: ClientMetadata,
                        grants: Sequence[PolicyGrant]) -> tuple[Client, NewSecret | None, str] | None:
        """Create a client under `token`'s policy (the caller has narrowed `grants` to it), spending one
        use; None when the token can no longer be used. Returns the client, its secret (secret methods)
        and its registration access token, both shown once. ConfigError: metadata the rules refuse."""
        metadata = dataclasses.replace(metadata, pending_approval=token.approval)
        client, grant_rows, secret_rows, new_secret = self._new_client(
            name, [GrantSpec(api, scopes) for api, scopes in grants], auth_method=auth_method, tenant=token.tenant,
            client_id=None, enabled=True, rate_limit=None, metadata=metadata, secret=None)
        access_token = generate_secret(_random.token_bytes, REGISTRATION_ACCESS_TOKEN_PREFIX)
        registration = ClientRegistration(client.client_id, token.token_id,
                                          hash_secret(self._material.pepper, access_token), token.grants,
                                          client.created_at)
        if not self.store.register_client(token.token_id, self._clock.now(), client, grant_rows, secret_rows,
                                          registration):
            return None
        self._audit.emit("client.registered", actor=self._actor, client_id=client.client_id,
                         token_id=token.token_id, auth_method=client.auth_method.value,
                         grants=[g.api for g in grant_rows], tenant=client.tenant, pending_approval=token.approval)
        return client, new_secret, access_token

    def verify_registration_access_token(self, client_id: str, plaintext: str) -> ClientRegistration | None:
        """The client's registration if `plaintext` is its registration access token, else None."""
        presented = hash_secret(self._material.pepper, plaintext)
        registration = self.store.load_registration(client_id) if has_valid_checksum(
            plaintext, REGISTRATION_ACCESS_TOKEN_PREFIX) else None
        if registration is None:
            hmac.compare_digest(presented, bytes(32))  # the same work either way
            return None
        return registration if hmac.compare_digest(presented, registration.access_token_hash) else None

    def verify_client_secret(self, client_id: str, plaintext: str) -> bool:
        """Whether `plaintext` is one of the client's active secrets (RFC 7592 §2.2 updates)."""
        presented = hash_secret(self._material.pepper, plaintext)
        now = self._clock.now()
        return any(hmac.compare_digest(presented, s.hash) and secret_state(s, now) is SecretState.ACTIVE
                   for s in self.store.load_secrets(client_id))

    # secrets ------------------------------------------------------------------
    def rotate_secret(self, client_id: str, grace: int) -> NewSecret:
        """Add a secret; the others stay valid for `grace` seconds, then expire."""
        client = self.client(client_id)
        if client.auth_method not in SECRET_METHODS:
            raise ConfigError(f"client {client_id} does not authenticate with a secret")
        row, new = self._new_secret(client_id)
        self.store.add_secret(row, expire_others_at=self._clock.now() + grace)
        self._audit.emit("client.secret_rotated", actor=self._actor, client_id=client_id,
                         secret_id=row.secret_id, grace_seconds=grace, tenant=client.tenant)
        return new

    def secrets(self, client_id: str) -> list[ClientSecret]:
        self.client(client_id)
        return self.store.load_secrets(client_id)

    def revoke_secret(self, client_id: str, secret_id: str) -> None:
        client = self.client(client_id)
        self.store.revoke_secret(client_id, secret_id, self._clock.now())
        self._audit.emit("client.secret_revoked", actor=self._actor, client_id=client_id, secret_id=secret_id,
                         tenant=client.tenant)

    # keys ---------------------------------------------------------------------
    def _global_only(self, what: str) -> None:
        if not self.scope.is_global:
            raise Forbidden(f"{what} is for global admins; an admin of tenant {self.scope.tenant} cannot do it")

    def keys(self) -> list[SigningKey]:
        """Signing keys' public metadata; every admin may read it (the JWKS is public anyway)."""
        return self.store.load_keys()

    def rotate_keys(self, algs: Sequence[str] | None = None) -> list[str]:
        """Refused to a tenant admin: the signing keys sign every tenant's tokens."""
        self._global_only("rotating signing keys")
        self.keyring.ensure_keys()
        if algs:
            return self.keyring.rotate(algs, actor=self._actor)
        return self.keyring.rotate(actor=self._actor)  # audited as the caller, not a generic "operator"

    # revocation ---------------------------------------------------------------
    def revoke_jti(self, jti: str, client_id: str = "", exp: float | None = None) -> None:
        """Revoke one token by `jti`; kept until the token's expiry (the longest lifetime if unknown).
        Refused to a tenant admin: a jti alone does not say whose token it is (see core/tenancy.py)."""
        self._global_only("revoking a token by jti")
        if not jti or len(jti) > 256:
            raise ConfigError("jti must be 1-256 characters")
        if exp is None:
            max_ttl = max((a.token_ttl for a in self.store.load_apis()), default=900)
            exp = self._clock.now() + max_ttl
        entry = status_entry_of_jti(jti)  # the token's status list entry, if Warden wrote it into the jti
        self.store.revoke_token(RevokedToken(jti=jti, client_id=client_id, exp=exp,
                                             status_list=entry[0] if entry else None,
                                             status_idx=entry[1] if entry else None))
        owner = self.store.load_client(client_id) if client_id else None
        self._audit.emit("token.revoked", actor=self._actor, client_id=client_id or None, jti=jti,
                         tenant=owner.tenant if owner else None)
        if self._on_revoked is not None:
            self._on_revoked("token")

    def revoke_client_tokens(self, client_id: str) -> float:
        """Every token the client holds now becomes inactive; returns the not-before time."""
        client = self.client(client_id)
        at = self._clock.now()
        self.store.update_client(dataclasses.replace(client, revoked_before=at))
        self._audit.emit("client.tokens_revoked", actor=self._actor, client_id=client_id, tenant=client.tenant)
        if self._on_revoked is not None:
            self._on_revoked("client")
        return at

    def revoked_tokens(self) -> list[RevokedToken]:
        """Unexpired revocations by jti; a tenant admin sees those naming its tenant's clients."""
        revoked = self.store.load_revoked_tokens(self._clock.now())
        if self.scope.is_global:
            return revoked
        visible = {c.client_id for c in self.clients()}
        return [r for r in revoked if r.client_id in visible]

    # console --------------------------------------------------------------------
    def issue_console_login(self, issuer: str, *, lifetime: int = 300, can_write: bool = True) -> LoginUrl:
        """A one-time sign-in URL for the web console at `issuer`, signing in as this actor.

        The admin API's `POST /admin/v1/console/login-urls` is the same operation over HTTP."""
        from warden.services.console_login import ConsoleLogins

        login = ConsoleLogins(self._material, self._clock, issuer, login_url_lifetime=lifetime).issue_login_url(
            self._actor, can_write=can_write)
        self._audit.emit("console.login_url_issued", actor=self._actor)
        return login

    # the CLI's reads are the scoped ones above (`api`, `apis`, `clients`, `grants`, `secrets`) ------
    def create_api(self, identifier: str, scopes: Sequence[str], *, ttl: int = 900, alg: str = DEFAULT_ALG,
                   name: str = "", dpop_required: bool = False, cert_bound: bool = False,
                   tenant: str | _Unchanged | None = UNCHANGED) -> Api:
        """Register a new API; Conflict when the identifier exists (changes go through `save_api`)."""
        if self.store.load_api(identifier) is not None:
            raise Conflict(f"API {identifier} already exists; change it with `warden apis update`")
        api, _ = self.save_api(identifier, scopes, ttl=ttl, alg=alg, name=name, dpop_required=dpop_required,
                               cert_bound=cert_bound, tenant=tenant)
        return api

    # transactions -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Every change made through this Admin inside the block is one store transaction, and its
        audit events are written only once it has committed (a rolled-back change is not audited)."""
        real = self._audit
        if isinstance(real, _DeferredAudit):  # nested: the outer block writes them
            yield
            return
        deferred = _DeferredAudit()
        self._audit = self.keyring._audit = deferred
        try:
            with self.store.transaction():
                yield
        finally:
            self._audit = self.keyring._audit = real
        deferred.replay(real)


class _DeferredAudit(AuditSink):
    """Holds events back until `replay` (after a commit); dropped with it on a rollback."""

    def __init__(self) -> None:
        super().__init__()
        self._held: list[tuple[str, dict[str, object]]] = []

    def emit(self, event: str, **fields: object) -> None:
        self._held.append((event, fields))

    def replay(self, sink: AuditSink) -> None:
        for event, fields in self._held:
            sink.emit(event, **fields)  # type: ignore[arg-type]
