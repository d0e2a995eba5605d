"""Admin REST API (`/admin/v1/...`): the CLI's operations over HTTP, as JSON.

Callers present a Warden access token (`Authorization: Bearer`) whose sole audience is
`<issuer>/admin/v1` (a string, or an array of that one value), the API every server
registers for itself at start-up; scope `warden:admin` allows every operation and
`warden:admin:read` the GET requests. A token that names other audiences as well is
refused (401), whatever its scope: its `scope` is shared with those APIs, and no other
API may define `warden:` scopes (core/api.py), so the two rules together keep another
API's grants from reaching the admin API.
Grant it like any other API:
`warden clients create ops --grant <issuer>/admin/v1=warden:admin`.
Sender-constrained tokens (DPoP, certificate-bound) are refused here for now rather
than accepted as bearer tokens (RFC 9449 §7.2). Every change goes through the same
`Admin` service as the CLI and is audited with the calling client as the actor.

Tenant-scoped administration: an admin client with a tenant (its registry entry, which must
agree with the token's `tenant` claim; a token minted before the client moved is refused)
acts within that tenant only (core/tenancy.py): other tenants' clients are absent from lists
and answer 404, creating or moving anything into another tenant answers 403, signing keys are
read-only and tokens are revoked by client only. A console session inherits the tenant of the
admin client that minted its sign-in URL.
Request bodies are checked against the schemas in admin_schema.py (the ones the OpenAPI
document publishes) before anything is read or stored. Lists take `limit` and an opaque
`cursor` and answer `{"items", "next_cursor"}`. Errors are RFC 9457 problem details
(`application/problem+json`) with 400, 401, 403, 404, 405, 409 or 503.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from warden.core.algorithms import DEFAULT_ALG
from warden.core.client import AuthMethod
from warden.core.client_metadata import parse_client_metadata
from warden.core.durations import parse_duration
from warden.core.tenancy import AdminScope
from warden.errors import ConfigError, Conflict, Forbidden, NotFound
from warden.protocol.access_token import verify_own_token
from warden.protocol.errors import InsufficientScope, InvalidRequest, InvalidToken, OAuthError
from warden.server import admin_extra
from warden.server.admin_schema import (
    API_CREATE,
    API_IN,
    APPLY_IN,
    CLIENT_APPROVE,
    CLIENT_CREATE,
    CLIENT_PATCH,
    KEYS_ROTATE,
    REGISTRATION_TOKEN_CREATE,
    SECRET_ROTATE,
    TOKENS_REVOKE,
    Schema,
    validate_body,
)
from warden.server.console import console_caller
from warden.server.http import NO_STORE, Request, Response, json_response
from warden.server.render import render_problem
from warden.server.runtime import Runtime
from warden.services.admin import UNCHANGED, Admin, GrantSpec
from warden.services.token_state import token_state
from warden.services.views import (
    api_view,
    client_view,
    key_view,
    registration_token_view,
    render_time,
    secret_view,
)

__all__ = ["ADMIN_SCOPES", "QUERIES", "ROUTES", "Route", "admin_audience", "handle_admin"]

ADMIN_SCOPES = ("warden:admin", "warden:admin:read")
_PREFIX = "/admin/v1"


def admin_audience(issuer: str) -> str:
    return f"{issuer}{_PREFIX}"


class _Caller:
    def __init__(self, actor: str, can_write: bool, tenant: str | None = None) -> None:
        self.actor = actor  # who audit events name: client:<id>, or console:<operator>#<session>
        self.can_write = can_write
        self.tenant = tenant  # None: a global admin

    @property
    def scope(self) -> AdminScope:
        return AdminScope(self.tenant)


def _authorize(request: Request, rt: Runtime, write: bool) -> _Caller:
    if b"authorization" not in request.headers and b"cookie" in request.headers:
        caller = _Caller(*console_caller(request, rt))  # a console session, with its CSRF token
        if write and not caller.can_write:
            raise InsufficientScope("this console session is read-only", reason="admin_scope")
        return caller
    scheme, _, token = (request.header(b"authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("a bearer token for the admin API is required", reason="admin_no_token")
    claims = verify_own_token(token.strip(), rt.registry.verification_keys, rt.issuer)
    if claims is None or token_state(claims, rt.registry, rt.clock.now()) != "active":
        raise InvalidToken("the access token is not active", reason="admin_inactive_token")
    # The admin API's only audience must be this API. A token that also names another API carries
    # scopes meant for that API too, and its `scope` cannot tell whose `warden:admin` it is.
    audience = admin_audience(rt.issuer)
    aud = claims.get("aud")
    if aud != audience and aud != [audience]:
        raise InvalidToken("the access token is not for the admin API alone", reason="admin_audience")
    if "cnf" in claims:
        raise InvalidToken("sender-constrained tokens are not accepted by the admin API", reason="admin_bound")
    scopes = set(str(claims.get("scope", "")).split())
    if not scopes & set(ADMIN_SCOPES):
        raise InsufficientScope("scope warden:admin or warden:admin:read is required", reason="admin_scope")
    # The caller's tenant is its client's, now (an active token implies a known, enabled client); a token
    # minted under another tenant assignment is stale, so it cannot carry an old, wider reach.
    entry = rt.registry.client_blocking(claims["client_id"])
    if entry is None:  # removed since token_state looked
        raise InvalidToken("the access token is not active", reason="admin_inactive_token")
    tenant = entry.client.tenant
    if claims.get("tenant") != tenant:
        raise InvalidToken("the access token was issued for another tenant", reason="admin_tenant_changed")
    caller = _Caller(f"client:{claims['client_id']}", "warden:admin" in scopes, tenant)
    if write and not caller.can_write:
        raise InsufficientScope("scope warden:admin is required", reason="admin_scope")
    return caller


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # json.loads would otherwise accept NaN and Infinity


def _body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type != b"application/json":
        raise InvalidRequest("content type must be application/json", reason="bad_content_type")
    try:
        data = json.loads(request.body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest("request body is not JSON", reason="bad_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", reason="bad_json")
    return data


def _grants(value: list[dict[str, Any]]) -> list[GrantSpec]:
    return [GrantSpec(item["api"], tuple(item["scopes"])) for item in value]


def _metadata(admin: Admin, value: Any) -> Any:
    try:
        return parse_client_metadata(value or {}, allow_loopback_http=admin.dev_mode)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"metadata: {exc}") from None


# lists: limit and an opaque cursor (the key of the last item returned) --------------------
_LIST_QUERY: dict[str, Schema] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
    "cursor": {"type": "string", "maxLength": 2000, "description": "next_cursor of the previous page"},
}
_CLIENT_QUERY: dict[str, Schema] = {
    **_LIST_QUERY,
    "name": {"type": "string", "maxLength": 200, "description": "part of the name (case-insensitive)"},
    "tenant": {"type": "string", "maxLength": 64},
    "enabled": {"type": "boolean"},
    "auth_method": {"type": "string", "enum": [m.value for m in AuthMethod]},
    "pending": {"type": "boolean", "description": "registered with approval and not yet approved"},
}


def _query(request: Request, allowed: dict[str, Schema]) -> dict[str, Any]:
    try:
        pairs = parse_qsl(request.query_string.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ConfigError("query string is not UTF-8") from None
    out: dict[str, Any] = {}
    for name, raw in pairs:
        schema = allowed.get(name)
        if schema is None:
            raise ConfigError(f"unknown query parameter {name!r}")
        if name in out:
            raise ConfigError(f"query parameter {name!r} given twice")
        value: Any = raw
        if schema.get("type") == "integer":
            if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
                raise ConfigError(f"{name}: expected an integer")
            value = int(raw)
        elif schema.get("type") == "boolean":
            if raw not in ("true", "false"):
                raise ConfigError(f"{name}: expected true or false")
            value = raw == "true"
        validate_body(schema, value, name)
        out[name] = value
    return out


_CURSOR = re.compile(r"[A-Za-z0-9_-]{2,2000}")


def _page(items: list[tuple[str, dict[str, Any]]], query: dict[str, Any]) -> dict[str, Any]:
    """Sort by key, skip past the cursor, cut at limit; `next_cursor` is null on the last page."""
    items.sort(key=lambda kv: kv[0])
    if "cursor" in query:
        raw = query["cursor"]
        try:
            if not _CURSOR.fullmatch(raw):
                raise ValueError(raw)
            after = base64.urlsafe_b64decode(raw.encode("ascii") + b"=" * (-len(raw) % 4)).decode("utf-8")
        except (ValueError, UnicodeError):
            raise ConfigError("cursor: not a cursor this API returned") from None
        items = [kv for kv in items if kv[0] > after]
    limit = query.get("limit", 100)
    page, more = items[:limit], len(items) > limit
    cursor = base64.urlsafe_b64encode(page[-1][0].encode()).decode().rstrip("=") if more else None
    return {"items": [v for _, v in page], "next_cursor": cursor}


# handlers: (admin, request, body, *path params) -> (status, document) ---------------------
Handler = Callable[..., tuple[int, Any]]


def _list_apis(admin: Admin, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
    query = _query(request, _LIST_QUERY)
    return 200, _page([(a.identifier, api_view(a)) for a in admin.apis()], query)


def _put_api(admin: Admin, request: Request, body: dict[str, Any], identifier: str) -> tuple[int, Any]:
    api, changed = admin.save_api(identifier, body["scopes"], ttl=parse_duration(body.get("ttl", 900)),
                                  alg=body.get("alg", DEFAULT_ALG), name=body.get("name", ""),
                                  dpop_required=body.get("dpop_required", False),
                                  cert_bound=body.get("cert_bound", False),
                                  tenant=body.get("tenant", UNCHANGED))
    return 200, api_view(api) | {"changed": changed}


def _delete_api(admin: Admin, request: Request, body: dict[str, Any], identifier: str) -> tuple[int, Any]:
    admin.delete_api(identifier)
    return 204, None


def _list_clients(admin: Admin, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
    query = _query(request, _CLIENT_QUERY)
    grants: dict[str, list[Any]] = {}
    for grant in admin.grants():
        grants.setdefault(grant.client_id, []).append(grant)
    name = query.get("name", "").lower()
    chosen = [c for c in admin.clients()
              if name in c.name.lower() and query.get("tenant", c.tenant) == c.tenant
              and query.get("enabled", c.enabled) == c.enabled
              and query.get("auth_method", c.auth_method.value) == c.auth_method.value
              and query.get("pending", c.metadata.pending_approval) == c.metadata.pending_approval]
    return 200, _page([(c.client_id, client_view(c, grants.get(c.client_id, []))) for c in chosen], query)


_CONDITIONS = ("allowed_ips", "max_token_lifetime")


def _conditions(body: dict[str, Any]) -> dict[str, Any]:
    """Conditional access, given as top-level fields (they win over the same names in `metadata`)."""
    options: dict[str, Any] = {}
    if "allowed_ips" in body:
        options["allowed_ips"] = body["allowed_ips"]
    if "max_token_lifetime" in body:
        value = body["max_token_lifetime"]
        options["max_token_lifetime"] = None if value is None else parse_duration(value)
    return options


def _create_client(admin: Admin, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
    client, secret = admin.create_client(
        body["name"], _grants(body.get("grants", [])), auth_method=body.get("auth_method", "client_secret_basic"),
        tenant=body.get("tenant", UNCHANGED), client_id=body.get("client_id"),
        enabled=body.get("enabled", True),
        rate_limit=body.get("rate_limit"), metadata=_metadata(admin, body.get("metadata")),
        **_conditions(body))
    view = client_view(client, admin.grants(client.client_id))
    if secret is not None:
        view |= {"client_secret": secret.secret, "secret_id": secret.secret_id}  # shown once
    return 201, view


def _get_client(admin: Admin, request: Request, body: dict[str, Any], client_id: str) -> tuple[int, Any]:
    return 200, client_view(admin.client(client_id), admin.grants(client_id))


def _patch_client(admin: Admin, request: Request, body: dict[str, Any], client_id: str) -> tuple[int, Any]:
    options: dict[str, Any] = {k: body[k] for k in ("name", "enabled", "tenant", "auth_method", "rate_limit")
                               if k in body}
    if "grants" in body:
        options["grants"] = _grants(body["grants"])
    if "metadata" in body:
        # A metadata object that does not name a conditional-access field keeps it as it is, so a
        # PATCH of the keys alone cannot lift an address restriction.
        named = set(body["metadata"]) if isinstance(body["metadata"], dict) else set()
        current = admin.client(client_id).metadata
        options["metadata"] = dataclasses.replace(
            _metadata(admin, body["metadata"]), **{n: getattr(current, n) for n in _CONDITIONS if n not in named})
    options |= _conditions(body)
    changed = admin.update_client(client_id, **options)
    return 200, client_view(admin.client(client_id), admin.grants(client_id)) | {"changed": changed}


def _delete_client(admin: Admin, request: Request, body: dict[str, Any], client_id: str) -> tuple[int, Any]:
    admin.delete_client(client_id)
    return 204, None


def _approve_client(admin: Admin, request: Request, body: dict[str, Any], client_id: str) -> tuple[int, Any]:
    changed = admin.approve_client(client_id)
    return 200, client_view(admin.client(client_id), admin.grants(client_id)) | {"changed": changed}


def _list_registration_tokens(admin: Admin, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
    query = _query(request, _LIST_QUERY)
    now = admin.now()
    return 200, _page([(t.token_id, registration_token_view(t, now)) for t in admin.registration_tokens()], query)


def _create_registration_token(admin: Admin, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
    ttl = body.get("ttl")
    token, plaintext = admin.create_registration_token(
        _grants(body["grants"]), max_uses=body.get("max_uses"), ttl=None if ttl is None else parse_duration(ttl),
        tenant=body.get("tenant", UNCHANGED), approval=body.get("approval", False))
    return 201, registration_token_view(token, admin.now()) | {"initial_access_token": plaintext}  # shown once


def _revoke_registration_token(admin: Admin, request: Request, body: dict[str, Any], token_id: str) -> tuple[int, Any]:
    admin.revoke_registration_token(token_id)
    return 204, None


def _list_secrets(admin: Admin, request: Request, body: dict[str, Any], client_id: str) -> tuple[int, Any]:
    query = _query(request, _LIST_QUERY)
    now = admin.now()
    return 200, _page([(s.secret_id, secret_view(s, now)) for s in admin.secrets(client_id)], query)


def _rotate_secret(admin: Admin, request: Request, body: dict[str, Any], client_id: str) -> tuple[int, Any]:
    new = admin.rotate_secret(client_id, parse_duration(body.get("grace", "24h")))
    return 201, {"client_id": client_id, "secret_id": new.secret_id, "client_secret": new.secret}


def _revoke_secret(admin: Admin, request: Request, body: dict[str, Any], client_id: str,
                   secret_id: str) -> tuple[int, Any]:
    admin.revoke_secret(client_id, secret_id)
    return 204, None


def _list_keys(admin: Admin, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
    query = _query(request, _LIST_QUERY)
    return 200, _page([(k.kid, key_view(k)) for k in admin.keys()], query)


def _rotate_keys(admin: Admin, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
    return 200, {"activated": admin.rotate_keys(body.get("algs"))}


def _revoke_tokens(admin: Admin, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
    if "jti" in body:
        admin.revoke_jti(body["jti"])
        return 200, {"revoked_jti": body["jti"]}
    at = admin.revoke_client_tokens(body["client_id"])
    return 200, {"client_id": body["client_id"], "revoked_before": render_time(at)}


# operations the remote CLI needs (warden apis create/update, apply, export) --------------------
def _get_api(admin: Admin, request: Request, body: dict[str, Any], identifier: str) -> tuple[int, Any]:
    return 200, api_view(admin.api(identifier))


def _create_api(admin: Admin, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
    api = admin.create_api(body["identifier"], body["scopes"], ttl=parse_duration(body.get("ttl", 900)),
                           alg=body.get("alg", DEFAULT_ALG), name=body.get("name", ""),
                           dpop_required=body.get("dpop_required", False), cert_bound=body.get("cert_bound", False),
                           tenant=body.get("tenant", UNCHANGED))
    return 201, api_view(api) | {"changed": True}


def _export(admin: Admin, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
    from warden.services.apply import export_document

    return 200, export_document(admin)


def _apply(admin: Admin, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
    """The whole document in one store transaction; a dry run makes the changes and rolls them back."""
    from warden.services.operations import apply_document

    dry_run = bool(body.get("dry_run", False))
    result = apply_document(admin, body["document"], prune=bool(body.get("prune", False)), dry_run=dry_run,
                            secrets=body.get("secrets"))
    return 200, {"changes": result["changes"], "dry_run": dry_run, "secrets": result["secrets"]}


class Route(NamedTuple):
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    writes: bool
    body: Schema | None = None  # the request body's schema, enforced before the handler runs


def _resource(path: str, **methods: Handler | tuple[Handler, Schema]) -> list[Route]:
    """The routes of one path, a keyword per method: its handler, with the body's schema for a write
    that takes one. Every method but GET writes (needs `warden:admin`)."""
    pattern = re.compile(path)
    routes = []
    for method, spec in methods.items():
        handler, body = spec if isinstance(spec, tuple) else (spec, None)
        routes.append(Route(method, pattern, handler, method != "GET", body))
    return routes


ROUTES: list[Route] = [
    *_resource(r"/apis", GET=_list_apis, POST=(_create_api, API_CREATE)),
    # the path arrives percent-decoded (ASGI), and API identifiers are URLs: the rest of the path is the identifier
    *_resource(r"/apis/(.+)", GET=_get_api, PUT=(_put_api, API_IN), DELETE=_delete_api),
    *_resource(r"/clients", GET=_list_clients, POST=(_create_client, CLIENT_CREATE)),
    *_resource(r"/clients/([^/]+)", GET=_get_client, PATCH=(_patch_client, CLIENT_PATCH), DELETE=_delete_client),
    *_resource(r"/clients/([^/]+)/approve", POST=(_approve_client, CLIENT_APPROVE)),
    *_resource(r"/clients/([^/]+)/secrets", GET=_list_secrets, POST=(_rotate_secret, SECRET_ROTATE)),
    *_resource(r"/clients/([^/]+)/secrets/([^/]+)", DELETE=_revoke_secret),
    *_resource(r"/registration-tokens", GET=_list_registration_tokens,
               POST=(_create_registration_token, REGISTRATION_TOKEN_CREATE)),
    *_resource(r"/registration-tokens/([^/]+)", DELETE=_revoke_registration_token),
    *_resource(r"/keys", GET=_list_keys),
    *_resource(r"/keys/rotate", POST=(_rotate_keys, KEYS_ROTATE)),
    *_resource(r"/tokens/revoke", POST=(_revoke_tokens, TOKENS_REVOKE)),
    *_resource(r"/export", GET=_export),
    *_resource(r"/apply", POST=(_apply, APPLY_IN)),
]
QUERIES = {_list_apis: _LIST_QUERY, _list_clients: _CLIENT_QUERY, _list_secrets: _LIST_QUERY,
           _list_keys: _LIST_QUERY, _list_registration_tokens: _LIST_QUERY}  # for the OpenAPI document


_error = render_problem
_CLI_HINT = re.compile(r"\s*\([^()]*`warden [^`]*`[^()]*\)")
_CLI_FLAG = re.compile(r"--(tls-)?([a-z][a-z-]*)")


def _api_words(message: str) -> str:
    """The admin services phrase some refusals for the CLI; an API caller gets field names, not flags."""
    message = _CLI_HINT.sub("", message)
    return _CLI_FLAG.sub(lambda m: ("tls_client_auth_" if m.group(1) else "") + m.group(2).replace("-", "_"),
                         message)


async def handle_admin(request: Request, rt: Runtime, admin_factory: Callable[[str, AdminScope], Admin]) -> Response:
    """Answer one `/admin/v1/...` request."""
    path = request.path[len(_PREFIX):]
    if path == "/openapi.json" and request.method == "GET":
        from warden.server.admin_openapi import OPENAPI

        return json_response(200, OPENAPI(rt.issuer))
    if admin_extra.owns(path):
        return await admin_extra.handle(request, rt, admin_factory, path, _authorize)
    matches = [r for r in ROUTES if r.pattern.fullmatch(path)]
    if not matches:
        return _error(404, "not_found", "no such admin resource")
    route = next((r for r in matches if r.method == request.method), None)
    if route is None:
        return _error(405, "method_not_allowed", "method not allowed on this resource",
                      [(b"allow", ", ".join(sorted({r.method for r in matches})).encode())])
    try:
        caller = _authorize(request, rt, route.writes)
        body = _body(request) if route.body is not None and request.body else {}
        if route.body is not None:
            validate_body(route.body, body)
        params = list(route.pattern.fullmatch(path).groups())  # type: ignore[union-attr]
        admin = admin_factory(caller.actor, caller.scope)
        status, document = await asyncio.to_thread(route.handler, admin, request, body, *params)
    except InvalidToken as exc:
        # RFC 6750 §3.1: a request without credentials (or with another scheme) gets no error code.
        challenge = b"Bearer" if exc.reason == "admin_no_token" else f'Bearer error="{exc.error}"'.encode()
        return _error(401, exc.error, exc.description or "", [(b"www-authenticate", challenge)])
    except InsufficientScope as exc:
        return _error(403, exc.error, exc.description or "",
                      [(b"www-authenticate", b'Bearer error="insufficient_scope", scope="warden:admin"')])
    except OAuthError as exc:
        return _error(exc.status, exc.error, exc.description or exc.error)
    except NotFound as exc:
        return _error(404, "not_found", str(exc))
    except Forbidden as exc:
        return _error(403, "forbidden", _api_words(str(exc)))
    except Conflict as exc:
        return _error(409, "conflict", _api_words(str(exc)))
    except (ConfigError, ValueError) as exc:
        return _error(400, "invalid_request", _api_words(str(exc)))
    if status == 204:
        return Response(204, b"", list(NO_STORE))
    return json_response(status, document, NO_STORE)
