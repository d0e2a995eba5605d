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
Errors are JSON `{"error", "error_description"}` with 400, 401, 403, 404, 409 or 503.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from warden.core.client_metadata import parse_client_metadata
from warden.core.durations import parse_duration
from warden.errors import ConfigError, Conflict, NotFound
from warden.protocol.access_token import verify_own_token
from warden.protocol.errors import InsufficientScope, InvalidRequest, InvalidToken, OAuthError
from warden.server import admin_extra
from warden.server.console import console_caller
from warden.server.http import NO_STORE, Request, Response, json_response
from warden.server.runtime import Runtime
from warden.services.admin import Admin, GrantSpec
from warden.services.token_state import token_state
from warden.services.views import api_view, client_view, key_view, secret_view

__all__ = ["ADMIN_SCOPES", "admin_audience", "handle_admin"]

ADMIN_SCOPES = ("warden:admin", "warden:admin:read")
_PREFIX = "/admin/v1"
_CLIENT_FIELDS = {"name", "grants", "auth_method", "tenant", "client_id", "rate_limit", "enabled", "metadata"}


def admin_audience(issuer: str) -> str:
    return f"{issuer}{_PREFIX}"


class _Caller:
    def __init__(self, actor: str, can_write: bool) -> None:
        self.actor = actor  # who audit events name: client:<id>, or console:<operator>#<session>
        self.can_write = can_write


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
    caller = _Caller(f"client:{claims['client_id']}", "warden:admin" in scopes)
    if write and not caller.can_write:
        raise InsufficientScope("scope warden:admin is required", reason="admin_scope")
    return caller


def _body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type != b"application/json":
        raise InvalidRequest("content type must be application/json", reason="bad_content_type")
    try:
        data = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest("request body is not JSON", reason="bad_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", reason="bad_json")
    return data


def _grants(value: Any) -> list[GrantSpec]:
    if not isinstance(value, list):
        raise ConfigError("grants must be a list of {api, scopes}")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("api"), str) or not isinstance(
                item.get("scopes"), list) or not all(isinstance(x, str) for x in item["scopes"]):
            raise ConfigError("each grant needs api (string) and scopes (list of strings)")
        out.append(GrantSpec(item["api"], tuple(item["scopes"])))
    return out


# handlers: (admin, caller, body, *path params) -> (status, document) -----------------------
Handler = Callable[..., tuple[int, Any]]


def _list_apis(admin: Admin, body: dict[str, Any]) -> tuple[int, Any]:
    return 200, [api_view(a) for a in admin.store.load_apis()]


def _put_api(admin: Admin, body: dict[str, Any], identifier: str) -> tuple[int, Any]:
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ConfigError("scopes must be a list of strings")
    api, changed = admin.save_api(identifier, scopes, ttl=parse_duration(body.get("ttl", 900)),
                                  alg=str(body.get("alg", "ES256")), name=str(body.get("name", "")),
                                  dpop_required=body.get("dpop_required") is True,
                                  cert_bound=body.get("cert_bound") is True)
    return 200, api_view(api) | {"changed": changed}


def _delete_api(admin: Admin, body: dict[str, Any], identifier: str) -> tuple[int, Any]:
    admin.delete_api(identifier)
    return 204, None


def _list_clients(admin: Admin, body: dict[str, Any]) -> tuple[int, Any]:
    grants: dict[str, list[Any]] = {}
    for grant in admin.store.load_grants():
        grants.setdefault(grant.client_id, []).append(grant)
    return 200, [client_view(c, grants.get(c.client_id, [])) for c in admin.store.load_clients()]


def _create_client(admin: Admin, body: dict[str, Any]) -> tuple[int, Any]:
    unknown = sorted(set(body) - _CLIENT_FIELDS)
    if unknown:
        raise ConfigError(f"unknown field {unknown[0]!r}")
    if not isinstance(body.get("name"), str):
        raise ConfigError("name is required")
    try:
        metadata = parse_client_metadata(body.get("metadata") or {}, allow_loopback_http=admin.dev_mode)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    client, secret = admin.create_client(
        body["name"], _grants(body.get("grants", [])), auth_method=str(body.get("auth_method", "client_secret_basic")),
        tenant=body.get("tenant"), client_id=body.get("client_id"), enabled=body.get("enabled", True) is not False,
        rate_limit=body.get("rate_limit"), metadata=metadata)
    view = client_view(client, admin.store.load_grants(client.client_id))
    if secret is not None:
        view |= {"client_secret": secret.secret, "secret_id": secret.secret_id}  # shown once
    return 201, view


def _get_client(admin: Admin, body: dict[str, Any], client_id: str) -> tuple[int, Any]:
    return 200, client_view(admin.client(client_id), admin.store.load_grants(client_id))


def _patch_client(admin: Admin, body: dict[str, Any], client_id: str) -> tuple[int, Any]:
    unknown = sorted(set(body) - (_CLIENT_FIELDS - {"client_id"}))
    if unknown:
        raise ConfigError(f"unknown field {unknown[0]!r}")
    options: dict[str, Any] = {}
    if "name" in body:
        options["name"] = str(body["name"])
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise ConfigError("enabled must be true or false")
        options["enabled"] = body["enabled"]
    if "tenant" in body:
        options["tenant"] = body["tenant"]
    if "auth_method" in body:
        options["auth_method"] = str(body["auth_method"])
    if "grants" in body:
        options["grants"] = _grants(body["grants"])
    if "rate_limit" in body:
        options["rate_limit"] = body["rate_limit"]
    if "metadata" in body:
        try:
            options["metadata"] = parse_client_metadata(body["metadata"] or {}, allow_loopback_http=admin.dev_mode)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    changed = admin.update_client(client_id, **options)
    return 200, client_view(admin.client(client_id), admin.store.load_grants(client_id)) | {"changed": changed}


def _delete_client(admin: Admin, body: dict[str, Any], client_id: str) -> tuple[int, Any]:
    admin.delete_client(client_id)
    return 204, None


def _list_secrets(admin: Admin, body: dict[str, Any], client_id: str) -> tuple[int, Any]:
    admin.client(client_id)
    now = admin.now()
    return 200, [secret_view(s, now) for s in admin.store.load_secrets(client_id)]


def _rotate_secret(admin: Admin, body: dict[str, Any], client_id: str) -> tuple[int, Any]:
    new = admin.rotate_secret(client_id, parse_duration(body.get("grace", "24h")))
    return 201, {"client_id": client_id, "secret_id": new.secret_id, "client_secret": new.secret}


def _revoke_secret(admin: Admin, body: dict[str, Any], client_id: str, secret_id: str) -> tuple[int, Any]:
    admin.revoke_secret(client_id, secret_id)
    return 204, None


def _list_keys(admin: Admin, body: dict[str, Any]) -> tuple[int, Any]:
    return 200, [key_view(k) for k in admin.keys()]


def _rotate_keys(admin: Admin, body: dict[str, Any]) -> tuple[int, Any]:
    algs = body.get("algs")
    if algs is not None and (not isinstance(algs, list) or not all(a in ("ES256", "RS256", "EdDSA") for a in algs)):
        raise ConfigError("algs must be a list of ES256, RS256, EdDSA")
    return 200, {"activated": admin.rotate_keys(algs)}


def _revoke_tokens(admin: Admin, body: dict[str, Any]) -> tuple[int, Any]:
    if isinstance(body.get("jti"), str) and "client_id" not in body:
        admin.revoke_jti(body["jti"])
        return 200, {"revoked_jti": body["jti"]}
    if isinstance(body.get("client_id"), str) and "jti" not in body:
        at = admin.revoke_client_tokens(body["client_id"])
        return 200, {"client_id": body["client_id"], "revoked_before": at}
    raise ConfigError("give jti or client_id")


_ROUTES: list[tuple[str, re.Pattern[str], Handler, bool]] = [  # method, path, handler, writes
    ("GET", re.compile(r"/apis"), _list_apis, False),
    # the path arrives percent-decoded (ASGI), and API identifiers are URLs: the rest of the path is the identifier
    ("PUT", re.compile(r"/apis/(.+)"), _put_api, True),
    ("DELETE", re.compile(r"/apis/(.+)"), _delete_api, True),
    ("GET", re.compile(r"/clients"), _list_clients, False),
    ("POST", re.compile(r"/clients"), _create_client, True),
    ("GET", re.compile(r"/clients/([^/]+)"), _get_client, False),
    ("PATCH", re.compile(r"/clients/([^/]+)"), _patch_client, True),
    ("DELETE", re.compile(r"/clients/([^/]+)"), _delete_client, True),
    ("GET", re.compile(r"/clients/([^/]+)/secrets"), _list_secrets, False),
    ("POST", re.compile(r"/clients/([^/]+)/secrets"), _rotate_secret, True),
    ("DELETE", re.compile(r"/clients/([^/]+)/secrets/([^/]+)"), _revoke_secret, True),
    ("GET", re.compile(r"/keys"), _list_keys, False),
    ("POST", re.compile(r"/keys/rotate"), _rotate_keys, True),
    ("POST", re.compile(r"/tokens/revoke"), _revoke_tokens, True),
]


def _error(status: int, error: str, description: str) -> Response:
    return json_response(status, {"error": error, "error_description": description[:300]}, NO_STORE)


async def handle_admin(request: Request, rt: Runtime, admin_factory: Callable[[str], Admin]) -> Response:
    """Answer one `/admin/v1/...` request."""
    path = request.path[len(_PREFIX):]
    if path == "/openapi.json" and request.method == "GET":
        from warden.server.admin_openapi import OPENAPI

        return json_response(200, OPENAPI(rt.issuer))
    if admin_extra.owns(path):
        return await admin_extra.handle(request, rt, admin_factory, path, _authorize)
    matches = [(m, r, h, w) for m, r, h, w in _ROUTES if r.fullmatch(path)]
    if not matches:
        return _error(404, "not_found", "no such admin resource")
    route = next((r for r in matches if r[0] == request.method), None)
    if route is None:
        return json_response(405, {"error": "method_not_allowed"},
                             [(b"allow", ", ".join(sorted({m for m, *_ in matches})).encode())])
    method, pattern, handler, writes = route
    try:
        caller = _authorize(request, rt, writes)
        body = _body(request) if method in ("POST", "PUT", "PATCH") and request.body else {}
        params = list(pattern.fullmatch(path).groups())  # type: ignore[union-attr]
        admin = admin_factory(caller.actor)
        status, document = await asyncio.to_thread(handler, admin, body, *params)
    except InvalidToken as exc:
        return json_response(401, {"error": exc.error, "error_description": exc.description or ""},
                             [*NO_STORE, (b"www-authenticate", f'Bearer error="{exc.error}"'.encode())])
    except InsufficientScope as exc:
        return json_response(403, {"error": exc.error, "error_description": exc.description or ""},
                             [*NO_STORE, (b"www-authenticate",
                                          b'Bearer error="insufficient_scope", scope="warden:admin"')])
    except OAuthError as exc:
        return _error(exc.status, exc.error, exc.description or exc.error)
    except NotFound as exc:
        return _error(404, "not_found", str(exc))
    except Conflict as exc:
        return _error(409, "conflict", str(exc))
    except (ConfigError, ValueError) as exc:
        return _error(400, "invalid_request", str(exc))
    if status == 204:
        return Response(204, b"", list(NO_STORE))
    return json_response(status, document, NO_STORE)
