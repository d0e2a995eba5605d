"""Administrative use cases shared by the CLI, `warden apply` and (later) the admin API.

Every change is validated by the core rules, written through the store (which
logs it for cache invalidation) and audited with the acting principal.
Plaintext secrets are returned exactly once, to the caller that created them.
"""

from __future__ import annotations

import dataclasses
import secrets as _random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from warden.core.api import Api, validate_api
from warden.core.client import SECRET_METHODS, AuthMethod, Client, Grant, validate_client_id, validate_tenant
from warden.core.client_metadata import ClientMetadata
from warden.core.clock import Clock
from warden.core.keys import SigningKey
from warden.core.revocation import RevokedToken, status_entry_of_jti
from warden.core.secrets import ClientSecret, generate_secret, hash_secret
from warden.errors import ConfigError, Conflict, NotFound
from warden.services.audit import AuditSink
from warden.services.client_auth import SUPPORTED_AUTH_METHODS
from warden.services.kek import KeyMaterial
from warden.services.keyring import Keyring
from warden.storage.contract import Store

if TYPE_CHECKING:
    from warden.services.console_login import LoginUrl

__all__ = ["UNCHANGED", "Admin", "GrantSpec", "NewSecret", "parse_grant_spec"]


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
                 on_revoked: Callable[[str], None] | None = None) -> None:
        """`on_revoked` hears of each revocation made, with its kind (`token` or `client`), for metrics."""
        self.dev_mode = dev_mode  # allows plain-http jwks_uri on loopback
        self.store = store
        self._material = material
        self._clock = clock
        self._audit = audit
        self._actor = actor
        self._on_revoked = on_revoked
        self.keyring = Keyring(store, material, clock, audit)

    def now(self) -> float:
        return self._clock.now()

    # APIs ---------------------------------------------------------------------
    def save_api(self, identifier: str, scopes: Sequence[str], *, ttl: int = 900, alg: str = "ES256",
                 name: str = "", dpop_required: bool = False, cert_bound: bool = False) -> tuple[Api, bool]:
        """Create or update an API; returns (api, changed)."""
        old = self.store.load_api(identifier)
        api = Api(identifier=identifier, scopes=tuple(scopes), token_ttl=ttl, alg=alg, name=name,
                  created_at=old.created_at if old else self._clock.now(), dpop_required=dpop_required,
                  cert_bound=cert_bound)
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
        self.store.save_api(api)
        self._audit.emit("api.updated" if old else "api.created", actor=self._actor, api=identifier,
                         scopes=list(api.scopes), ttl=ttl, alg=alg)
        return api, True

    def delete_api(self, identifier: str) -> None:
        self.store.delete_api(identifier)
        self._audit.emit("api.deleted", actor=self._actor, api=identifier)

    # clients ------------------------------------------------------------------
    def _grants(self, client_id: str, specs: Sequence[GrantSpec]) -> list[Grant]:
        seen: set[str] = set()
        grants = []
        for position, spec in enumerate(specs):
            api = self.store.load_api(spec.api)
            if api is None:
                raise ConfigError(f"grant names unknown API {spec.api!r} (create it with `warden apis create`)")
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
                      auth_method: str = AuthMethod.CLIENT_SECRET_BASIC.value, tenant: str | None = None,
                      client_id: str | None = None, enabled: bool = True,
                      rate_limit: float | None = None,
                      metadata: ClientMetadata | None = None,
                      secret: str | None = None) -> tuple[Client, NewSecret | None]:
        """`secret`: use this plaintext (e.g. from the operator's vault) instead of generating one."""
        method = self._method(auth_method)
        metadata = metadata or ClientMetadata()
        self._check_metadata(method, metadata)
        client_id = client_id or _random.token_hex(12)
        try:
            validate_client_id(client_id)
            if tenant is not None:
                validate_tenant(tenant)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not name.strip() or len(name) > 200:
            raise ConfigError("client name must be 1-200 characters")
        client = Client(client_id=client_id, name=name, auth_method=method, enabled=enabled, tenant=tenant,
                        rate_limit=rate_limit, created_at=self._clock.now(), metadata=metadata)
        grant_rows = self._grants(client_id, grants)
        secret_rows: list[ClientSecret] = []
        new_secret = None
        if secret is not None and method not in SECRET_METHODS:
            raise ConfigError(f"client {client_id} does not authenticate with a secret")
        if method in SECRET_METHODS:
            row, new_secret = self._new_secret(client_id, plaintext=secret)
            secret_rows.append(row)
        self.store.create_client(client, grant_rows, secret_rows)
        self._audit.emit("client.created", actor=self._actor, client_id=client_id, auth_method=method.value,
                         grants=[g.api for g in grant_rows], tenant=tenant)
        return client, new_secret

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
                      metadata: ClientMetadata | None = None) -> bool:
        """Change the named attributes; return whether anything changed."""
        client = self.client(client_id)
        changes: dict[str, object] = {}
        if name is not None and name != client.name:
            changes["name"] = name
        if enabled is not None and enabled != client.enabled:
            changes["enabled"] = enabled
        if not isinstance(tenant, _Unchanged) and tenant != client.tenant:
            if tenant is not None:
                try:
                    validate_tenant(tenant)
                except ValueError as exc:
                    raise ConfigError(str(exc)) from None
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
        changed = False
        if changes:
            self.store.update_client(dataclasses.replace(client, **changes))  # type: ignore[arg-type]
            event = {True: "client.enabled", False: "client.disabled"}.get(changes.get("enabled"),  # type: ignore
                                                                           "client.updated")
            self._audit.emit(event, actor=self._actor, client_id=client_id, fields=sorted(changes))
            changed = True
        if grants is not None:
            new = self._grants(client_id, grants)
            if [(g.api, g.scopes, g.position) for g in new] != [
                    (g.api, g.scopes, g.position) for g in self.store.load_grants(client_id)]:
                self.store.set_grants(client_id, new)
                self._audit.emit("client.grants_changed", actor=self._actor, client_id=client_id,
                                 grants=[g.api for g in new])
                changed = True
        return changed

    def client(self, client_id: str) -> Client:
        client = self.store.load_client(client_id)
        if client is None:
            raise NotFound(f"no client {client_id}")
        return client

    def delete_client(self, client_id: str) -> None:
        self.store.delete_client(client_id)
        self._audit.emit("client.deleted", actor=self._actor, client_id=client_id)

    # secrets ------------------------------------------------------------------
    def rotate_secret(self, client_id: str, grace: int) -> NewSecret:
        """Add a secret; the others stay valid for `grace` seconds, then expire."""
        client = self.client(client_id)
        if client.auth_method not in SECRET_METHODS:
            raise ConfigError(f"client {client_id} does not authenticate with a secret")
        row, new = self._new_secret(client_id)
        self.store.add_secret(row, expire_others_at=self._clock.now() + grace)
        self._audit.emit("client.secret_rotated", actor=self._actor, client_id=client_id,
                         secret_id=row.secret_id, grace_seconds=grace)
        return new

    def revoke_secret(self, client_id: str, secret_id: str) -> None:
        self.store.revoke_secret(client_id, secret_id, self._clock.now())
        self._audit.emit("client.secret_revoked", actor=self._actor, client_id=client_id, secret_id=secret_id)

    # keys ---------------------------------------------------------------------
    def keys(self) -> list[SigningKey]:
        return self.store.load_keys()

    def rotate_keys(self, algs: Sequence[str] | None = None) -> list[str]:
        self.keyring.ensure_keys()
        if algs:
            return self.keyring.rotate(algs, actor=self._actor)
        return self.keyring.rotate(actor=self._actor)  # audited as the caller, not a generic "operator"

    # revocation ---------------------------------------------------------------
    def revoke_jti(self, jti: str, client_id: str = "", exp: float | None = None) -> None:
        """Revoke one token by `jti`; kept until the token's expiry (the longest lifetime if unknown)."""
        if not jti or len(jti) > 256:
            raise ConfigError("jti must be 1-256 characters")
        if exp is None:
            max_ttl = max((a.token_ttl for a in self.store.load_apis()), default=900)
            exp = self._clock.now() + max_ttl
        entry = status_entry_of_jti(jti)  # the token's status list entry, if Warden wrote it into the jti
        self.store.revoke_token(RevokedToken(jti=jti, client_id=client_id, exp=exp,
                                             status_list=entry[0] if entry else None,
                                             status_idx=entry[1] if entry else None))
        self._audit.emit("token.revoked", actor=self._actor, client_id=client_id or None, jti=jti)
        if self._on_revoked is not None:
            self._on_revoked("token")

    def revoke_client_tokens(self, client_id: str) -> float:
        """Every token the client holds now becomes inactive; returns the not-before time."""
        client = self.client(client_id)
        at = self._clock.now()
        self.store.update_client(dataclasses.replace(client, revoked_before=at))
        self._audit.emit("client.tokens_revoked", actor=self._actor, client_id=client_id)
        if self._on_revoked is not None:
            self._on_revoked("client")
        return at

    # console --------------------------------------------------------------------
    def issue_console_login(self, issuer: str, *, lifetime: int = 300, can_write: bool = True) -> LoginUrl:
        """A one-time sign-in URL for the web console at `issuer`, signing in as this actor.

        The admin API's `POST /admin/v1/console/login-urls` is the same operation over HTTP."""
        from warden.services.console_login import ConsoleLogins

        login = ConsoleLogins(self._material, self._clock, issuer, login_url_lifetime=lifetime).issue_login_url(
            self._actor, can_write=can_write)
        self._audit.emit("console.login_url_issued", actor=self._actor)
        return login

    # reads the CLI needs (so it never reads the store itself) ---------------------------------
    def api(self, identifier: str) -> Api:
        api = self.store.load_api(identifier)
        if api is None:
            raise NotFound(f"no API {identifier}")
        return api

    def apis(self) -> list[Api]:
        return self.store.load_apis()

    def clients(self) -> list[Client]:
        return self.store.load_clients()

    def grants(self, client_id: str | None = None) -> list[Grant]:
        """Grants ordered by client and position (every client's when `client_id` is None)."""
        return self.store.load_grants(client_id)

    def secrets(self, client_id: str) -> list[ClientSecret]:
        """The client's secrets (hashes and metadata, never a plaintext); NotFound for no client."""
        self.client(client_id)
        return self.store.load_secrets(client_id)

    def create_api(self, identifier: str, scopes: Sequence[str], *, ttl: int = 900, alg: str = "ES256",
                   name: str = "", dpop_required: bool = False, cert_bound: bool = False) -> Api:
        """Register a new API; Conflict when the identifier exists (changes go through `save_api`)."""
        if self.store.load_api(identifier) is not None:
            raise Conflict(f"API {identifier} already exists; change it with `warden apis update`")
        api, _ = self.save_api(identifier, scopes, ttl=ttl, alg=alg, name=name, dpop_required=dpop_required,
                               cert_bound=cert_bound)
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
