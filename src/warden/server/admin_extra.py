"""Admin API endpoints the console needs beyond the CLI's operations (`/admin/v1/...`):

- `GET /audit`: recent audit events, newest first, filtered by `event` (prefix), `actor`
  (substring), `client_id`, `outcome` and `limit` (query parameters). Read from the server's
  audit file (setting `audit.sink`) and the CLI's `<data_dir>/audit.log`; a server whose sink
  is stdout or off answers an empty list with `"available": false`.
- `GET /revocations`: revoked tokens still unexpired, and clients whose earlier tokens are revoked.
- `POST /console/login-urls`: a one-time console sign-in URL for the calling admin (what
  `warden console login-url` prints); a read-only caller gets a read-only session. Refused to
  console sessions, so a session cannot extend itself.

Authorization is the admin API's own (`_authorize` is passed in), errors have its JSON shape.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from warden.errors import ConfigError, NotFound
from warden.protocol.errors import InsufficientScope, InvalidToken, OAuthError
from warden.server.http import NO_STORE, Request, Response, json_response
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


def _list_audit(rt: Runtime, query: dict[str, str]) -> dict[str, Any]:
    try:
        limit = max(1, min(1000, int(query.get("limit", "100"))))
    except ValueError:
        raise ConfigError("limit must be a number") from None
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
            if actor and actor not in str(item.get("actor", "")):
                continue
            if (client_id and item.get("client_id") != client_id) or (outcome and item.get("outcome") != outcome):
                continue
            events.append(item)
    events.sort(key=lambda e: str(e.get("time", "")), reverse=True)
    return {"available": bool(sources), "events": events[:limit]}


def _list_revocations(admin: Admin) -> dict[str, Any]:
    now = admin.now()
    tokens = [{"jti": r.jti, "client_id": r.client_id, "expires_at": render_time(r.exp)}
              for r in admin.store.load_revoked_tokens(now)]
    clients = [{"client_id": c.client_id, "name": c.name, "tokens_revoked_before": render_time(c.revoked_before)}
               for c in admin.store.load_clients() if c.revoked_before is not None]
    return {"tokens": tokens, "clients": clients}


def _error(status: int, error: str, description: str, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    return json_response(status, {"error": error, "error_description": description[:300]},
                         [*NO_STORE, *(headers or [])])


async def handle(request: Request, rt: Runtime, admin_factory: Callable[[str], Admin], path: str,
                 authorize: Callable[[Request, Runtime, bool], Any]) -> Response:
    method, writes = _PATHS[path]
    if request.method != method:
        return json_response(405, {"error": "method_not_allowed"}, [(b"allow", method.encode())])
    try:
        caller = authorize(request, rt, writes)
        if path == "/audit":
            document = await asyncio.to_thread(_list_audit, rt, _query(request))
            return json_response(200, document, NO_STORE)
        admin = admin_factory(caller.actor)
        if path == "/revocations":
            return json_response(200, await asyncio.to_thread(_list_revocations, admin), NO_STORE)
        if caller.actor.startswith("console:"):
            raise InsufficientScope("a console session cannot mint sign-in URLs", reason="admin_scope")
        login = rt.console_logins.issue_login_url(caller.actor, can_write=caller.can_write)
        rt.audit.emit("console.login_url_issued", actor=caller.actor, source=request.source)
        return json_response(201, {"url": login.url, "expires_at": render_time(login.expires_at)}, NO_STORE)
    except InvalidToken as exc:
        return _error(401, exc.error, exc.description or "",
                      [(b"www-authenticate", f'Bearer error="{exc.error}"'.encode())])
    except OAuthError as exc:
        return _error(exc.status, exc.error, exc.description or exc.error)
    except NotFound as exc:
        return _error(404, "not_found", str(exc))
    except (ConfigError, ValueError) as exc:
        return _error(400, "invalid_request", str(exc))


def extra_paths(op: Callable[..., dict[str, Any]], read: str) -> dict[str, Any]:
    """The OpenAPI paths of these endpoints, built with admin_openapi's `_op`."""
    audit = op("recent audit events, newest first", read)
    audit["parameters"] = [{"name": name, "in": "query", "required": False, "schema": schema, "description": text}
                           for name, schema, text in (
                               ("event", {"type": "string"}, "event name prefix, e.g. client."),
                               ("actor", {"type": "string"}, "substring of the actor"),
                               ("client_id", {"type": "string"}, "exact client id"),
                               ("outcome", {"type": "string"}, "success or failure"),
                               ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "default 100"))]
    return {
        "/audit": {"get": audit},
        "/revocations": {"get": op("revoked tokens and clients with revoked tokens", read)},
        "/console/login-urls": {"post": op("a one-time console sign-in URL for the caller", read, None, "201")},
    }
