"""Admin API endpoints the console needs beyond the CLI's operations (`/admin/v1/...`):

- `GET /audit`: recent audit events, newest first, filtered by `event` (prefix), `actor`
  (substring), `client_id`, `outcome` and `limit` (query parameters). Read from the server's
  audit file (setting `audit.sink`) and the CLI's `<data_dir>/audit.log`; a server whose sink
  is stdout or off answers an empty list with `"available": false`.
- `GET /revocations`: revoked tokens still unexpired, and clients whose earlier tokens are revoked.
- `POST /console/login-urls`: a one-time console sign-in URL for the calling admin (what
  `warden console login-url` prints); a read-only caller, or `{"read_only": true}`, gets a
  read-only session. Refused to
  console sessions, so a session cannot extend itself.

Authorization is the admin API's own (`_authorize` is passed in), errors have its JSON shape.
A tenant admin (core/tenancy.py) reads only events whose `tenant` is its own, and only its
tenant's revocations; the sign-in URL it mints opens a session with the same reach.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from warden.core.tenancy import AdminScope
from warden.errors import ConfigError, Forbidden, NotFound
from warden.protocol.errors import InsufficientScope, InvalidRequest, InvalidToken, OAuthError
from warden.server.http import NO_STORE, Request, Response, json_response
from warden.server.render import render_problem
from warden.server.runtime import Runtime
from warden.services.admin import Admin
from warden.services.views import render_time

__all__ = ["extra_paths", "handle", "owns"]

_AUDIT_TAIL_BYTES = 4 * 1024 * 1024
_PATHS = {"/audit": ("GET", False), "/revocations": ("GET", False), "/console/login-urls": ("POST", False)}


def owns(path: str) -> bool:
    return path in _PATHS


def _query(request: Request) -> dict[str, str]:
    try:
        pairs = parse_qs(request.query_string.decode("utf-8"), max_num_fields=20, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise ConfigError("the query string is malformed") from None
    return {k: v[-1] for k, v in pairs.items()}


def _tail_lines(path: str) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - _AUDIT_TAIL_BYTES))
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if size > _AUDIT_TAIL_BYTES else lines  # the first line may be cut


def _audit_sources(rt: Runtime) -> list[str]:
    sources = []
    sink = rt.settings.audit.sink
    if sink not in ("stdout", "stderr", "off"):
        sources.append(sink)
    cli_log = os.path.join(rt.settings.data_dir, "audit.log")
    if os.path.exists(cli_log) and cli_log not in sources:
        sources.append(cli_log)
    return sources


def _list_audit(rt: Runtime, query: dict[str, str], scope: AdminScope) -> dict[str, Any]:
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        raise ConfigError("limit must be a number") from None
    if not 1 <= limit <= 1000:
        raise ConfigError("limit must be between 1 and 1000")
    if query.get("outcome") not in (None, "success", "failure"):
        raise ConfigError("outcome must be success or failure")
    event, actor = query.get("event", ""), query.get("actor", "")
    client_id, outcome = query.get("client_id"), query.get("outcome")
    rt.audit.flush()
    events: list[dict[str, Any]] = []
    sources = _audit_sources(rt)
    for source in sources:
        for line in _tail_lines(source):
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if not isinstance(item, dict) or not str(item.get("event", "")).startswith(event):
                continue
            if not scope.is_global and item.get("tenant") != scope.tenant:
                continue
            if actor and actor not in str(item.get("actor", "")):
                continue
            if (client_id and item.get("client_id") != client_id) or (outcome and item.get("outcome") != outcome):
                continue
            events.append(item)
    events.sort(key=lambda e: str(e.get("time", "")), reverse=True)
    return {"available": bool(sources), "events": events[:limit]}


def _login_options(request: Request) -> bool:
    """`read_only` from an optional JSON body `{"read_only": true}`."""
    if not request.body:
        return False
    content_type = request.headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type != b"application/json":
        raise InvalidRequest("content type must be application/json", reason="bad_content_type")
    try:
        body = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest("request body is not JSON", reason="bad_json") from None
    if not isinstance(body, dict) or set(body) - {"read_only"} or not isinstance(body.get("read_only", False), bool):
        raise InvalidRequest("the body may only hold read_only (true or false)", reason="bad_json")
    return bool(body.get("read_only", False))


def _list_revocations(admin: Admin) -> dict[str, Any]:
    tokens = [{"jti": r.jti, "client_id": r.client_id, "expires_at": render_time(r.exp)}
              for r in admin.revoked_tokens()]
    clients = [{"client_id": c.client_id, "name": c.name, "tokens_revoked_before": render_time(c.revoked_before)}
               for c in admin.clients() if c.revoked_before is not None]
    return {"tokens": tokens, "clients": clients}


_error = render_problem  # the admin API's RFC 9457 problem details


async def handle(request: Request, rt: Runtime, admin_factory: Callable[[str, AdminScope], Admin], path: str,
                 authorize: Callable[[Request, Runtime, bool], Any]) -> Response:
    method, writes = _PATHS[path]
    if request.method != method:
        return _error(405, "method_not_allowed", "method not allowed on this resource",
                      [(b"allow", method.encode())])
    try:
        caller = authorize(request, rt, writes)
        if path == "/audit":
            document = await asyncio.to_thread(_list_audit, rt, _query(request), caller.scope)
            return json_response(200, document, NO_STORE)
        admin = admin_factory(caller.actor, caller.scope)
        if path == "/revocations":
            return json_response(200, await asyncio.to_thread(_list_revocations, admin), NO_STORE)
        if caller.actor.startswith("console:"):
            raise InsufficientScope("a console session cannot mint sign-in URLs", reason="admin_scope")
        read_only = _login_options(request)
        login = rt.console_logins.issue_login_url(caller.actor, can_write=caller.can_write and not read_only)
        rt.audit.emit("console.login_url_issued", actor=caller.actor, source=request.source, tenant=caller.tenant)
        return json_response(201, {"url": login.url, "expires_at": render_time(login.expires_at)}, NO_STORE)
    except InvalidToken as exc:
        return _error(401, exc.error, exc.description or "",
                      [(b"www-authenticate", f'Bearer error="{exc.error}"'.encode())])
    except OAuthError as exc:
        return _error(exc.status, exc.error, exc.description or exc.error)
    except NotFound as exc:
        return _error(404, "not_found", str(exc))
    except Forbidden as exc:
        return _error(403, "forbidden", str(exc))
    except (ConfigError, ValueError) as exc:
        return _error(400, "invalid_request", str(exc))


def extra_paths(op: Callable[..., dict[str, Any]], read: str) -> dict[str, Any]:
    """The OpenAPI paths of these endpoints, built with admin_openapi's `_op`."""
    text = {"type": "string"}
    when = {"type": ["string", "null"]}
    event = {"type": "object", "required": ["time", "event", "outcome"], "additionalProperties": True,
             "properties": {"time": text, "event": text, "outcome": text, "actor": text, "client_id": text}}
    audit_out = {"type": "object", "required": ["available", "events"], "properties": {
        "available": {"type": "boolean", "description": "false when the server's audit sink is not a file"},
        "events": {"type": "array", "items": event}}}
    revocations_out = {"type": "object", "required": ["tokens", "clients"], "properties": {
        "tokens": {"type": "array", "items": {"type": "object", "required": ["jti", "client_id", "expires_at"],
                                              "properties": {"jti": text, "client_id": text, "expires_at": when}}},
        "clients": {"type": "array", "items": {"type": "object", "required": ["client_id", "name"], "properties": {
            "client_id": text, "name": text, "tokens_revoked_before": when}}}}}
    login_out = {"type": "object", "required": ["url", "expires_at"],
                 "properties": {"url": text, "expires_at": when}}
    login_in = {"type": "object", "additionalProperties": False,
                "properties": {"read_only": {"type": "boolean", "description": "a session that cannot change "
                                                                              "anything"}}}
    query = {"event": text, "actor": text, "client_id": text, "outcome": {"enum": ["success", "failure"]},
             "limit": {"type": "integer", "minimum": 1, "maximum": 1000}}
    return {
        "/audit": {"get": op("listAudit", "recent audit events, newest first (event: name prefix; actor: "
                                          "substring)", read, "200", audit_out, query=query,
                             errors=("400", "401", "403", "503"))},
        "/revocations": {"get": op("listRevocations", "revoked tokens and clients with revoked tokens", read,
                                   "200", revocations_out, errors=("401", "403", "503"))},
        "/console/login-urls": {"post": op("createConsoleLoginUrl", "a one-time console sign-in URL for the "
                                           "caller (read-only for a warden:admin:read caller)", read, "201",
                                           login_out, body=login_in, errors=("400", "401", "403", "503"))},
    }
