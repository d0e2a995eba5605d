"""The management operations the CLI runs, as one interface with two implementations.

`AdminOperations` speaks in the JSON views of `services.views` (what `--json` prints and
what the admin API answers), so the CLI formats one shape whichever side did the work:
`LocalOperations` here runs them on `services.admin` against a local store;
`warden.cli.remote.RemoteOperations` sends them to a server's `/admin/v1`. Both raise the
same `warden.errors` (ConfigError for bad input, NotFound, Conflict, StorageUnavailable).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from warden.core.client_metadata import parse_client_metadata
from warden.errors import ConfigError
from warden.services import views
from warden.services.admin import UNCHANGED, Admin, GrantSpec

__all__ = ["KEEP", "AdminOperations", "LocalOperations", "View", "apply_document"]

View = dict[str, Any]  # one JSON object of services.views


class _Keep:
    """The default of an option that may also be set to None (`max_token_lifetime`)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


class AdminOperations(Protocol):
    """What the management commands need. Lists return every item (implementations page)."""

    # APIs
    def get_api(self, identifier: str) -> View:
        """NotFound if there is no such API."""

    def create_api(self, identifier: str, scopes: Sequence[str], *, ttl: int, alg: str, name: str,
                   dpop_required: bool, cert_bound: bool, tenant: str | None = None) -> View:
        """Conflict if the identifier exists. `tenant`: the API belongs to it (None: shared, or the
        caller's own tenant for a tenant admin)."""

    def save_api(self, identifier: str, scopes: Sequence[str], *, ttl: int, alg: str, name: str,
                 dpop_required: bool, cert_bound: bool, tenant: str | None) -> View:
        """Create or replace; the view carries `changed`. `tenant` None makes the API shared."""

    def list_apis(self) -> list[View]: ...

    def delete_api(self, identifier: str) -> None: ...

    # clients
    def create_client(self, name: str, grants: Sequence[GrantSpec], *, auth_method: str, tenant: str | None,
                      client_id: str | None, rate_limit: float | None, metadata: Mapping[str, Any],
                      allowed_ips: Sequence[str] | None = None, max_token_lifetime: int | None = None) -> View:
        """The client's view, plus `client_secret` and `secret_id` when it has a secret (shown once).
        `metadata` is raw client metadata (jwks, jwks_uri, federated, tls_client_auth_*...);
        `allowed_ips` and `max_token_lifetime` are its conditional access (None: none)."""

    def update_client(self, client_id: str, *, name: str | None = None, token_exchange: bool | None = None,
                      allowed_ips: Sequence[str] | None = None, max_token_lifetime: int | _Keep | None = KEEP) -> View:
        """Change what is given (None / KEEP: unchanged; `allowed_ips=[]` lifts the restriction,
        `max_token_lifetime=None` the cap); the view carries `changed`."""

    def approve_client(self, client_id: str) -> bool:
        """Let a client registered with approval authenticate; False if it was not pending."""

    def get_client(self, client_id: str) -> View: ...

    def list_clients(self) -> list[View]: ...

    def set_client_enabled(self, client_id: str, enabled: bool) -> bool:
        """Whether anything changed."""

    def delete_client(self, client_id: str) -> None: ...

    # secrets
    def rotate_secret(self, client_id: str, grace: int) -> View:
        """`client_id`, `secret_id`, `client_secret` (shown once)."""

    def list_secrets(self, client_id: str) -> list[View]: ...

    def revoke_secret(self, client_id: str, secret_id: str) -> None: ...

    # keys and tokens
    def list_keys(self) -> list[View]: ...

    def rotate_keys(self, algs: Sequence[str] | None) -> list[str]:
        """The kids activated."""

    def revoke_jti(self, jti: str) -> None: ...

    def revoke_client_tokens(self, client_id: str) -> str | None:
        """The not-before time (RFC 3339) of the client's tokens from now on."""

    # dynamic registration (RFC 7591)
    def create_registration_token(self, grants: Sequence[GrantSpec], *, max_uses: int | None, ttl: int | None,
                                  tenant: str | None, approval: bool) -> View:
        """The token's view plus `initial_access_token` (shown once)."""

    def list_registration_tokens(self) -> list[View]: ...

    def revoke_registration_token(self, token_id: str) -> None: ...

    # apply and export
    def apply(self, document: Mapping[str, Any], *, prune: bool, dry_run: bool,
              secrets: Mapping[str, str] | None) -> View:
        """`changes` (list of lines) and `secrets` (client_id, secret_id, client_secret of new clients);
        one transaction, nothing written on a dry run or a failure."""

    def export(self) -> dict[str, list[View]]:
        """The store's APIs and clients in the apply file's shape."""

    # console
    def console_login_url(self, *, issuer: str | None, read_only: bool) -> View:
        """`url` and `expires_at` of a one-time console sign-in URL."""


class LocalOperations:
    """`AdminOperations` on `services.admin` (the CLI's local mode, against the data directory or
    database of its settings). `issuer` and `login_url_lifetime` are the settings the console needs."""

    def __init__(self, admin: Admin, *, issuer: str, login_url_lifetime: int) -> None:
        self._admin = admin
        self._issuer = issuer
        self._lifetime = login_url_lifetime

    def get_api(self, identifier: str) -> View:
        return views.api_view(self._admin.api(identifier))

    def create_api(self, identifier: str, scopes: Sequence[str], *, ttl: int, alg: str, name: str,
                   dpop_required: bool, cert_bound: bool, tenant: str | None = None) -> View:
        api = self._admin.create_api(identifier, scopes, ttl=ttl, alg=alg, name=name, dpop_required=dpop_required,
                                     cert_bound=cert_bound, tenant=UNCHANGED if tenant is None else tenant)
        return views.api_view(api) | {"changed": True}

    def save_api(self, identifier: str, scopes: Sequence[str], *, ttl: int, alg: str, name: str,
                 dpop_required: bool, cert_bound: bool, tenant: str | None) -> View:
        api, changed = self._admin.save_api(identifier, scopes, ttl=ttl, alg=alg, name=name,
                                            dpop_required=dpop_required, cert_bound=cert_bound, tenant=tenant)
        return views.api_view(api) | {"changed": changed}

    def list_apis(self) -> list[View]:
        return [views.api_view(a) for a in self._admin.apis()]

    def delete_api(self, identifier: str) -> None:
        self._admin.delete_api(identifier)

    def create_client(self, name: str, grants: Sequence[GrantSpec], *, auth_method: str, tenant: str | None,
                      client_id: str | None, rate_limit: float | None, metadata: Mapping[str, Any],
                      allowed_ips: Sequence[str] | None = None, max_token_lifetime: int | None = None) -> View:
        try:
            parsed = parse_client_metadata(dict(metadata), allow_loopback_http=self._admin.dev_mode)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        client, secret = self._admin.create_client(
            name, grants, auth_method=auth_method, tenant=UNCHANGED if tenant is None else tenant,
            client_id=client_id, rate_limit=rate_limit, metadata=parsed,
            allowed_ips=UNCHANGED if allowed_ips is None else allowed_ips,
            max_token_lifetime=UNCHANGED if max_token_lifetime is None else max_token_lifetime)
        view = self.get_client(client.client_id)
        if secret is not None:
            view |= {"client_secret": secret.secret, "secret_id": secret.secret_id}
        return view

    def update_client(self, client_id: str, *, name: str | None = None, token_exchange: bool | None = None,
                      allowed_ips: Sequence[str] | None = None, max_token_lifetime: int | _Keep | None = KEEP) -> View:
        metadata = None
        if token_exchange is not None:
            metadata = dataclasses.replace(self._admin.client(client_id).metadata, token_exchange=token_exchange)
        changed = self._admin.update_client(
            client_id, name=name, metadata=metadata, allowed_ips=UNCHANGED if allowed_ips is None else allowed_ips,
            max_token_lifetime=UNCHANGED if isinstance(max_token_lifetime, _Keep) else max_token_lifetime)
        return self.get_client(client_id) | {"changed": changed}

    def approve_client(self, client_id: str) -> bool:
        return self._admin.approve_client(client_id)

    def create_registration_token(self, grants: Sequence[GrantSpec], *, max_uses: int | None, ttl: int | None,
                                  tenant: str | None, approval: bool) -> View:
        token, plaintext = self._admin.create_registration_token(
            grants, max_uses=max_uses, ttl=ttl, tenant=UNCHANGED if tenant is None else tenant, approval=approval)
        return views.registration_token_view(token, self._admin.now()) | {"initial_access_token": plaintext}

    def list_registration_tokens(self) -> list[View]:
        now = self._admin.now()
        return [views.registration_token_view(t, now) for t in self._admin.registration_tokens()]

    def revoke_registration_token(self, token_id: str) -> None:
        self._admin.revoke_registration_token(token_id)

    def get_client(self, client_id: str) -> View:
        return views.client_view(self._admin.client(client_id), self._admin.grants(client_id))

    def list_clients(self) -> list[View]:
        grants: dict[str, list[Any]] = {}
        for grant in self._admin.grants():
            grants.setdefault(grant.client_id, []).append(grant)
        return [views.client_view(c, grants.get(c.client_id, [])) for c in self._admin.clients()]

    def set_client_enabled(self, client_id: str, enabled: bool) -> bool:
        return self._admin.update_client(client_id, enabled=enabled)

    def delete_client(self, client_id: str) -> None:
        self._admin.delete_client(client_id)

    def rotate_secret(self, client_id: str, grace: int) -> View:
        new = self._admin.rotate_secret(client_id, grace)
        return {"client_id": new.client_id, "secret_id": new.secret_id, "client_secret": new.secret}

    def list_secrets(self, client_id: str) -> list[View]:
        rows = self._admin.secrets(client_id)
        now = self._admin.now()
        return [views.secret_view(s, now) for s in rows]

    def revoke_secret(self, client_id: str, secret_id: str) -> None:
        self._admin.revoke_secret(client_id, secret_id)

    def list_keys(self) -> list[View]:
        self._admin.keyring.ensure_keys()
        return [views.key_view(k) for k in self._admin.keys()]

    def rotate_keys(self, algs: Sequence[str] | None) -> list[str]:
        return self._admin.rotate_keys(algs)

    def revoke_jti(self, jti: str) -> None:
        self._admin.revoke_jti(jti)

    def revoke_client_tokens(self, client_id: str) -> str | None:
        return views.render_time(self._admin.revoke_client_tokens(client_id))

    def apply(self, document: Mapping[str, Any], *, prune: bool, dry_run: bool,
              secrets: Mapping[str, str] | None) -> View:
        return apply_document(self._admin, document, prune=prune, dry_run=dry_run, secrets=secrets)

    def export(self) -> dict[str, list[View]]:
        from warden.services.apply import export_document

        return export_document(self._admin)

    def console_login_url(self, *, issuer: str | None, read_only: bool) -> View:
        login = self._admin.issue_console_login((issuer or self._issuer).rstrip("/"), lifetime=self._lifetime,
                                                can_write=not read_only)
        return {"url": login.url, "expires_at": views.render_time(login.expires_at)}


def apply_document(admin: Admin, document: Mapping[str, Any], *, prune: bool, dry_run: bool,
                   secrets: Mapping[str, str] | None, where: str = "document") -> View:
    """`warden apply` on a parsed apply file (TOML tables or JSON), as its JSON result; shared by
    local mode and the admin API's `POST /apply`."""
    from warden.services.apply import apply_state, parse_apply_document

    state = parse_apply_document(dict(document), where, dev_mode=admin.dev_mode)
    result = apply_state(admin, state, prune=prune, dry_run=dry_run, secrets=dict(secrets) if secrets else None)
    return {"changes": result.changes,
            "secrets": [{"client_id": s.client_id, "secret_id": s.secret_id, "client_secret": s.secret}
                        for s in result.secrets]}
