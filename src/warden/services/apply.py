"""`warden apply FILE`: make the store match a declarative TOML file, idempotently.

    [[apis]]
    identifier = "https://api.example"
    scopes = ["read", "write"]
    ttl = "15m"            # optional, default 15m
    alg = "ES256"          # optional
    tenant = "acme"        # optional: only that tenant's clients can be granted it; absent: see below

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
`prune` is set. An absent `tenant` means the applying admin's own: none (a shared API, a
client without tenant) for a global admin, its tenant for a tenant admin, whose apply and
export reach only its tenant's clients and APIs (core/tenancy.py; shared APIs can be granted
but are neither exported nor changed, and another tenant's objects are out of reach). A second run with the same file changes nothing. The whole file is
validated before anything is written, and a client created by apply gets a secret
that is returned once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from warden._toml import load_toml
from warden.core.algorithms import DEFAULT_ALG
from warden.core.api import Api, validate_api
from warden.core.client_metadata import TLS_SUBJECT_FIELDS, ClientMetadata, parse_client_metadata
from warden.core.durations import parse_duration
from warden.errors import ConfigError
from warden.services.admin import Admin, GrantSpec, NewSecret

__all__ = ["ApplyResult", "DesiredClient", "DesiredState", "apply_state", "export_document", "export_state",
           "parse_apply_document", "parse_apply_file", "render_apply_file"]

_API_KEYS = {"identifier", "scopes", "ttl", "alg", "name", "dpop_required", "cert_bound", "tenant"}
_METADATA_KEYS = ("jwks", "jwks_uri", "federated", "dpop_bound_access_tokens", "token_exchange", "allowed_ips",
                  "max_token_lifetime", "pending_approval",
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


def _tables(data: dict[str, Any], name: str, keys: set[str], required: str, missing: str,
            within: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """The `[[name]]` tables of `data` with where each stands (`apis[0]`), each with only `keys` and a string `required`."""
    for i, raw in enumerate(data.get(name, [])):
        where = f"{within}.{name}[{i}]" if within else f"{name}[{i}]"
        _check_keys(raw, keys, where)
        if not isinstance(raw.get(required), str):
            raise ConfigError(f"{where}: {required} {missing}")
        yield where, raw


def _tenant(raw: dict[str, Any], where: str) -> str | None:
    tenant = raw.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise ConfigError(f"{where}.tenant: expected a string")
    return tenant


def parse_apply_file(path: str, *, dev_mode: bool = False) -> DesiredState:
    return parse_apply_document(load_toml(path, "apply file"), path, dev_mode=dev_mode)


def parse_apply_document(data: Any, where: str = "document", *, dev_mode: bool = False) -> DesiredState:
    """An apply file's content (TOML tables, or the same shape as JSON from the admin API)."""
    path = where
    _check_keys(data, {"apis", "clients"}, path)
    for section in ("apis", "clients"):
        if not isinstance(data.get(section, []), list):
            raise ConfigError(f"{path}: {section} must be a list of tables")
    apis: list[Api] = []
    for where, raw in _tables(data, "apis", _API_KEYS, "identifier", "is required"):
        ttl = raw.get("ttl", 900)
        if isinstance(ttl, bool) or not isinstance(ttl, (int, str)):
            raise ConfigError(f"{where}.ttl: expected seconds or a duration such as 15m")
        try:
            api = Api(identifier=raw["identifier"], scopes=_str_list(raw.get("scopes"), f"{where}.scopes"),
                      token_ttl=parse_duration(raw.get("ttl", 900)), alg=str(raw.get("alg", DEFAULT_ALG)),
                      name=str(raw.get("name", "")), dpop_required=raw.get("dpop_required", False) is True,
                      cert_bound=raw.get("cert_bound", False) is True, tenant=_tenant(raw, where))
            validate_api(api)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        apis.append(api)
    clients: list[DesiredClient] = []
    for where, raw in _tables(data, "clients", _CLIENT_KEYS, "client_id", "is required (it keeps apply idempotent)"):
        if not isinstance(raw.get("grants", []), list):
            raise ConfigError(f"{where}.grants: expected a list of tables")
        grants = [GrantSpec(g["api"], _str_list(g.get("scopes"), f"{at}.scopes"))
                  for at, g in _tables(raw, "grants", {"api", "scopes"}, "api", "is required", within=where)]
        enabled = raw.get("enabled", True)
        rate = raw.get("rate_limit")
        for key in ("name", "auth_method", "tenant"):
            if key in raw and not isinstance(raw[key], str) and not (key == "tenant" and raw[key] is None):
                raise ConfigError(f"{where}.{key}: expected a string")
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}.enabled: expected true or false")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0):
            raise ConfigError(f"{where}.rate_limit: expected a non-negative number of requests per second")
        try:
            metadata = parse_client_metadata({k: raw[k] for k in _METADATA_KEYS if k in raw},
                                             allow_loopback_http=dev_mode)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        clients.append(DesiredClient(raw["client_id"], str(raw.get("name", raw["client_id"])),
                                     str(raw.get("auth_method", "client_secret_basic")), _tenant(raw, where),
                                     enabled, tuple(grants), float(rate) if rate is not None else None, metadata))
    ids = [c.client_id for c in clients]
    idents = [a.identifier for a in apis]
    for name, values in (("client_id", ids), ("API identifier", idents)):
        dupes = {v for v in values if values.count(v) > 1}
        if dupes:
            raise ConfigError(f"{path}: {name} {min(dupes)!r} appears twice")
    return DesiredState(tuple(apis), tuple(clients))


def _client_diff(current: Any, grants_now: list[tuple[str, tuple[str, ...]]], client: DesiredClient) -> list[str]:
    pairs = [("name", current.name, client.name), ("auth_method", current.auth_method.value, client.auth_method),
             ("tenant", current.tenant, client.tenant), ("enabled", current.enabled, client.enabled),
             ("rate_limit", current.rate_limit, client.rate_limit),
             ("grants", [f"{a}={','.join(s)}" for a, s in grants_now],
              [f"{g.api}={','.join(g.scopes)}" for g in client.grants])]
    out = [f"{name}: {old!r} -> {new!r}" for name, old, new in pairs if old != new]
    if current.metadata != client.metadata:
        out.append("metadata changed")
    return out


def _api_diff(old: Api, api: Api) -> list[str]:
    pairs = [("scopes", list(old.scopes), list(api.scopes)), ("ttl", old.token_ttl, api.token_ttl),
             ("alg", old.alg, api.alg), ("name", old.name, api.name),
             ("dpop_required", old.dpop_required, api.dpop_required), ("cert_bound", old.cert_bound, api.cert_bound),
             ("tenant", old.tenant, api.tenant)]
    return [f"{name}: {a!r} -> {b!r}" for name, a, b in pairs if a != b]


def apply_state(admin: Admin, state: DesiredState, *, prune: bool = False, dry_run: bool = False,
                secrets: dict[str, str] | None = None) -> ApplyResult:
    """Make the store match `state`, in one store transaction: a file that fails anywhere (a rule,
    a conflict, the database) changes nothing, and its changes are audited only once committed.
    `dry_run` makes every change a real run would, in the same transaction, and rolls it back, so
    it checks exactly what a real run checks. `secrets` gives new clients their secret (by
    client_id) instead of a generated one. The built-in admin API (the one API that defines
    reserved `warden:` scopes) is never pruned."""
    try:
        with admin.transaction():
            result = _apply(admin, state, prune=prune, secrets=secrets)
            if dry_run:
                raise _RolledBack(result)
    except _RolledBack as rehearsed:
        rehearsed.result.secrets = []  # the rolled-back secrets exist nowhere
        return rehearsed.result
    return result


class _RolledBack(Exception):
    """Ends a dry run's transaction with a rollback, carrying what it would have done."""

    def __init__(self, result: ApplyResult) -> None:
        super().__init__("dry run")
        self.result = result


def _apply(admin: Admin, state: DesiredState, *, prune: bool, secrets: dict[str, str] | None) -> ApplyResult:
    import dataclasses

    from warden.core.api import is_reserved_scope
    from warden.errors import Conflict

    result = ApplyResult()
    store = admin.store
    existing_apis = {a.identifier: a for a in admin.apis()}
    # an absent tenant is the applying admin's own (TOML has no null)
    apis = [a if a.tenant is not None else dataclasses.replace(a, tenant=admin.tenant) for a in state.apis]
    declared = {a.identifier for a in apis}
    for client in state.clients:  # validate grants against the APIs as they will be
        for grant in client.grants:
            if grant.api not in declared and grant.api not in existing_apis:
                raise ConfigError(f"client {client.client_id}: grant names unknown API {grant.api!r}")
    for api in apis:
        old = existing_apis.get(api.identifier)
        if old is None or _api_diff(old, api):
            detail = f" ({'; '.join(_api_diff(old, api))})" if old else ""
            result.changes.append(f"{'update' if old else 'create'} api {api.identifier}{detail}")
            admin.save_api(api.identifier, api.scopes, ttl=api.token_ttl, alg=api.alg, name=api.name,
                           dpop_required=api.dpop_required, cert_bound=api.cert_bound, tenant=api.tenant)
    clients = [c if c.tenant is not None else dataclasses.replace(c, tenant=admin.tenant) for c in state.clients]
    for client in clients:
        current = store.load_client(client.client_id)
        if current is not None and not admin.scope.sees_client(current):
            raise Conflict(f"client id {client.client_id} is already in use")  # ids are global
        if current is None:
            result.changes.append(f"create client {client.client_id}")
            _, secret = admin.create_client(client.name, client.grants, auth_method=client.auth_method,
                                            tenant=client.tenant, client_id=client.client_id,
                                            enabled=client.enabled, rate_limit=client.rate_limit,
                                            metadata=client.metadata,
                                            secret=(secrets or {}).get(client.client_id))
            if secret is not None:
                result.secrets.append(secret)
            continue
        grants_now = [(g.api, g.scopes) for g in store.load_grants(client.client_id)]
        diff = _client_diff(current, grants_now, client)
        if diff:
            result.changes.append(f"update client {client.client_id} ({'; '.join(diff)})")
            admin.update_client(client.client_id, name=client.name, enabled=client.enabled,
                                tenant=client.tenant, auth_method=client.auth_method,
                                grants=client.grants, rate_limit=client.rate_limit,
                                metadata=client.metadata)
    if prune:
        wanted = {c.client_id for c in state.clients}
        for current in admin.clients():
            if current.client_id not in wanted:
                result.changes.append(f"delete client {current.client_id}")
                admin.delete_client(current.client_id)
        for identifier, api in existing_apis.items():
            if (identifier not in declared and admin.scope.may_change_api(api)
                    and not any(is_reserved_scope(s) for s in api.scopes)):
                result.changes.append(f"delete api {identifier}")
                admin.delete_api(identifier)
    return result


def export_state(admin: Admin) -> str:
    """The store's APIs and clients as an apply file; applying it to the same store changes nothing.
    A tenant admin exports its tenant's APIs and clients only (not the shared APIs)."""
    return render_apply_file(export_document(admin))


def export_document(admin: Admin) -> dict[str, list[dict[str, Any]]]:
    """The store's APIs and clients in the apply file's shape (JSON-ready; what `GET /admin/v1/export`
    answers). The built-in admin API is left out (every server registers it itself); secrets never appear."""
    from warden.core.api import is_reserved_scope
    from warden.core.client_metadata import render_client_metadata

    apis: list[dict[str, Any]] = []
    for api in sorted(admin.apis(), key=lambda a: a.identifier):
        if any(is_reserved_scope(s) for s in api.scopes) or not admin.scope.may_change_api(api):
            continue
        entry: dict[str, Any] = {"identifier": api.identifier, "scopes": list(api.scopes), "ttl": api.token_ttl,
                                 "alg": api.alg}
        entry |= {"name": api.name} if api.name else {}
        entry |= {"dpop_required": True} if api.dpop_required else {}
        entry |= {"cert_bound": True} if api.cert_bound else {}
        entry |= {"tenant": api.tenant} if api.tenant is not None else {}
        apis.append(entry)
    grants = admin.grants()
    clients: list[dict[str, Any]] = []
    for client in sorted(admin.clients(), key=lambda c: c.client_id):
        item: dict[str, Any] = {"client_id": client.client_id, "name": client.name,
                                "auth_method": client.auth_method.value, "enabled": client.enabled}
        item |= {"tenant": client.tenant} if client.tenant is not None else {}
        item |= {"rate_limit": float(client.rate_limit)} if client.rate_limit is not None else {}
        mine = sorted((g for g in grants if g.client_id == client.client_id), key=lambda g: g.position)
        item["grants"] = [{"api": g.api, "scopes": list(g.scopes)} for g in mine]
        item |= json.loads(render_client_metadata(client.metadata))
        clients.append(item)
    return {"apis": apis, "clients": clients}


def render_apply_file(document: dict[str, list[dict[str, Any]]]) -> str:
    """An `export_document` as TOML, one `[[apis]]` or `[[clients]]` table per entry."""
    lines: list[str] = ["# written by `warden export`; apply with `warden apply FILE`", ""]
    for section in ("apis", "clients"):
        for entry in document.get(section, []):
            lines.append(f"[[{section}]]")
            for key, value in entry.items():
                if key == "grants":
                    lines.append("grants = [" + ", ".join(
                        f"{{ api = {_toml(g['api'])}, scopes = {_toml(list(g['scopes']))} }}" for g in value) + "]")
                else:
                    lines.append(f"{key} = {_toml(value)}")
            lines.append("")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    """A TOML value (inline form) for JSON-like data."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise ConfigError(f"cannot export value of type {type(value).__name__}")
