"""`warden apply FILE`: make the store match a declarative TOML file, idempotently.

    [[apis]]
    identifier = "https://api.example"
    scopes = ["read", "write"]
    ttl = "15m"            # optional, default 15m
    alg = "ES256"          # optional

    [[clients]]
    client_id = "billing"  # required: the stable key that makes apply idempotent
    name = "Billing"
    auth_method = "client_secret_basic"   # optional
    tenant = "acme"        # optional
    enabled = true         # optional
    grants = [{ api = "https://api.example", scopes = ["read"] }]
    # private_key_jwt clients: jwks = { keys = [...] }, or jwks_uri = "https://...", or workload identities:
    # federated = [{ issuer = "https://k8s.example", subject = "system:serviceaccount:ns:app" }]

Listed APIs and clients are created or updated; unlisted ones are left alone unless
`prune` is set. A second run with the same file changes nothing. The whole file is
validated before anything is written, and a client created by apply gets a secret
that is returned once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from warden._toml import load_toml
from warden.core.api import Api, validate_api
from warden.core.client_metadata import TLS_SUBJECT_FIELDS, ClientMetadata, parse_client_metadata
from warden.core.durations import parse_duration
from warden.errors import ConfigError
from warden.services.admin import Admin, GrantSpec, NewSecret

__all__ = ["ApplyResult", "DesiredClient", "DesiredState", "apply_state", "parse_apply_file"]

_API_KEYS = {"identifier", "scopes", "ttl", "alg", "name", "dpop_required", "cert_bound"}
_METADATA_KEYS = ("jwks", "jwks_uri", "federated", "dpop_bound_access_tokens",
                  "tls_client_certificate_bound_access_tokens", *TLS_SUBJECT_FIELDS)
_CLIENT_KEYS = {"client_id", "name", "auth_method", "tenant", "enabled", "grants", "rate_limit", *_METADATA_KEYS}


@dataclass(frozen=True)
class DesiredClient:
    client_id: str
    name: str
    auth_method: str
    tenant: str | None
    enabled: bool
    grants: tuple[GrantSpec, ...]
    rate_limit: float | None
    metadata: ClientMetadata


@dataclass(frozen=True)
class DesiredState:
    apis: tuple[Api, ...]
    clients: tuple[DesiredClient, ...]


@dataclass
class ApplyResult:
    changes: list[str] = field(default_factory=list)
    secrets: list[NewSecret] = field(default_factory=list)


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a non-empty list of strings")
    return tuple(value)


def parse_apply_file(path: str, *, dev_mode: bool = False) -> DesiredState:
    data = load_toml(path, "apply file")
    _check_keys(data, {"apis", "clients"}, path)
    apis: list[Api] = []
    for i, raw in enumerate(data.get("apis", [])):
        where = f"apis[{i}]"
        _check_keys(raw, _API_KEYS, where)
        if not isinstance(raw.get("identifier"), str):
            raise ConfigError(f"{where}: identifier is required")
        try:
            api = Api(identifier=raw["identifier"], scopes=_str_list(raw.get("scopes"), f"{where}.scopes"),
                      token_ttl=parse_duration(raw.get("ttl", 900)), alg=str(raw.get("alg", "ES256")),
                      name=str(raw.get("name", "")), dpop_required=raw.get("dpop_required", False) is True,
                      cert_bound=raw.get("cert_bound", False) is True)
            validate_api(api)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        apis.append(api)
    clients: list[DesiredClient] = []
    for i, raw in enumerate(data.get("clients", [])):
        where = f"clients[{i}]"
        _check_keys(raw, _CLIENT_KEYS, where)
        if not isinstance(raw.get("client_id"), str):
            raise ConfigError(f"{where}: client_id is required (it keeps apply idempotent)")
        grants = []
        for j, g in enumerate(raw.get("grants", [])):
            _check_keys(g, {"api", "scopes"}, f"{where}.grants[{j}]")
            if not isinstance(g.get("api"), str):
                raise ConfigError(f"{where}.grants[{j}]: api is required")
            grants.append(GrantSpec(g["api"], _str_list(g.get("scopes"), f"{where}.grants[{j}].scopes")))
        enabled = raw.get("enabled", True)
        rate = raw.get("rate_limit")
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}.enabled: expected true or false")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0):
            raise ConfigError(f"{where}.rate_limit: expected a non-negative number of requests per second")
        try:
            metadata = parse_client_metadata({k: raw[k] for k in _METADATA_KEYS if k in raw},
                                             allow_loopback_http=dev_mode)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        clients.append(DesiredClient(raw["client_id"], str(raw.get("name", raw["client_id"])),
                                     str(raw.get("auth_method", "client_secret_basic")), raw.get("tenant"),
                                     enabled, tuple(grants), float(rate) if rate is not None else None, metadata))
    ids = [c.client_id for c in clients]
    idents = [a.identifier for a in apis]
    for name, values in (("client_id", ids), ("API identifier", idents)):
        dupes = {v for v in values if values.count(v) > 1}
        if dupes:
            raise ConfigError(f"{path}: {name} {min(dupes)!r} appears twice")
    return DesiredState(tuple(apis), tuple(clients))


def apply_state(admin: Admin, state: DesiredState, *, prune: bool = False, dry_run: bool = False) -> ApplyResult:
    result = ApplyResult()
    store = admin.store
    existing_apis = {a.identifier: a for a in store.load_apis()}
    declared = {a.identifier for a in state.apis}
    for client in state.clients:  # validate grants against the APIs as they will be
        for grant in client.grants:
            if grant.api not in declared and grant.api not in existing_apis:
                raise ConfigError(f"client {client.client_id}: grant names unknown API {grant.api!r}")
    for api in state.apis:
        old = existing_apis.get(api.identifier)
        comparable = (api.scopes, api.token_ttl, api.alg, api.name, api.dpop_required, api.cert_bound)
        if old is None or (old.scopes, old.token_ttl, old.alg, old.name, old.dpop_required,
                           old.cert_bound) != comparable:
            result.changes.append(f"{'update' if old else 'create'} api {api.identifier}")
            if not dry_run:
                admin.save_api(api.identifier, api.scopes, ttl=api.token_ttl, alg=api.alg, name=api.name,
                               dpop_required=api.dpop_required, cert_bound=api.cert_bound)
    for client in state.clients:
        current = store.load_client(client.client_id)
        if current is None:
            result.changes.append(f"create client {client.client_id}")
            if not dry_run:
                _, secret = admin.create_client(client.name, client.grants, auth_method=client.auth_method,
                                                tenant=client.tenant, client_id=client.client_id,
                                                enabled=client.enabled, rate_limit=client.rate_limit,
                                                metadata=client.metadata)
                if secret is not None:
                    result.secrets.append(secret)
            continue
        grants_now = [(g.api, g.scopes) for g in store.load_grants(client.client_id)]
        differs = (current.name != client.name or current.auth_method.value != client.auth_method
                   or current.tenant != client.tenant or current.enabled != client.enabled
                   or current.rate_limit != client.rate_limit or current.metadata != client.metadata
                   or grants_now != [(g.api, g.scopes) for g in client.grants])
        if differs:
            result.changes.append(f"update client {client.client_id}")
            if not dry_run:
                admin.update_client(client.client_id, name=client.name, enabled=client.enabled,
                                    tenant=client.tenant, auth_method=client.auth_method,
                                    grants=client.grants, rate_limit=client.rate_limit,
                                    metadata=client.metadata)
    if prune:
        wanted = {c.client_id for c in state.clients}
        for current in store.load_clients():
            if current.client_id not in wanted:
                result.changes.append(f"delete client {current.client_id}")
                if not dry_run:
                    admin.delete_client(current.client_id)
        for identifier in existing_apis:
            if identifier not in declared:
                result.changes.append(f"delete api {identifier}")
                if not dry_run:
                    admin.delete_api(identifier)
    return result
