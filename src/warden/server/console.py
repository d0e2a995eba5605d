"""The operators' web console at `<issuer>/console`: sign-in, session, and the shipped assets.

The console is a static page plus JavaScript that calls the admin API (`/admin/v1`) and reads
`/metrics`; it has no other way into the store. Sign-in: `GET /console/login?t=<ticket>` spends
the one-time ticket (services/console_login.py), sets the session cookie and redirects to
`/console/`, so the address bar and history no longer hold the ticket.

How a session authorizes admin API calls: `console_caller` maps the session cookie to an admin
principal only for requests that carry no `Authorization` header and do carry the session's
CSRF token in `X-Warden-CSRF` (a header a cross-site form or image cannot set, and the value only
the console page of this session was given). The cookie is HttpOnly, SameSite=Strict, `Secure`
(and named `__Host-...`) when the issuer is https; no admin token ever reaches JavaScript.
Requests the browser marks as cross-site (`Sec-Fetch-Site`) are refused as well.

A session opened from a URL an admin client minted has that client's reach: its tenant, read
from the registry on every request (so moving, disabling or deleting the client takes effect
in its sessions at once: a disabled or deleted client's sessions are refused).

Every page is served with a strict Content-Security-Policy (no inline script or style, nothing
from another origin) and is not cacheable.
"""

from __future__ import annotations

import asyncio
import html
import logging
from importlib import resources
from urllib.parse import parse_qs

from warden.protocol.errors import InvalidToken, OAuthError
from warden.server.http import NO_STORE, Request, Response, json_response
from warden.server.runtime import Runtime
from warden.services.console_login import ConsoleSession

__all__ = ["CSP", "CSRF_HEADER", "CsrfRefused", "console_caller", "handle_console", "session_cookie_name"]

log = logging.getLogger("warden.server")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
CSRF_HEADER = b"x-warden-csrf"
PREFIX = "/console"
_ASSETS = {"console.js": b"text/javascript; charset=utf-8", "console.css": b"text/css; charset=utf-8",
           "favicon.svg": b"image/svg+xml"}
_SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                     (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                     (b"cross-origin-opener-policy", b"same-origin"), (b"cross-origin-resource-policy", b"same-origin")]


class CsrfRefused(OAuthError):
    """A console-session request without the session's CSRF token, or sent cross-site."""

    error = "invalid_request"
    status = 403


def session_cookie_name(issuer: str) -> str:
    # `__Host-` makes the browser insist on Secure, Path=/ and no Domain (RFC 6265bis §4.1.3.2)
    return "__Host-warden_console" if issuer.startswith("https://") else "warden_console"


def _cookie(request: Request, name: str) -> str | None:
    raw = request.header(b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip()
    return None


def _session(request: Request, rt: Runtime) -> ConsoleSession | None:
    value = _cookie(request, session_cookie_name(rt.issuer))
    return rt.console_logins.load_session(value) if value else None


def _session_tenant(session: ConsoleSession, rt: Runtime) -> str | None:
    """The tenant of the admin client that minted the session's URL; None for the CLI (global)."""
    kind, _, client_id = session.operator.partition(":")
    if kind != "client":
        return None
    entry = rt.registry.client_blocking(client_id)
    if entry is None or not entry.client.enabled:
        raise InvalidToken("the console session's admin client is disabled or gone", reason="console_no_session")
    return entry.client.tenant


def console_caller(request: Request, rt: Runtime) -> tuple[str, bool, str | None]:
    """(actor, can_write, tenant) of the console session behind an admin API request; raises when refused."""
    if not rt.settings.console.enabled:
        raise InvalidToken("a bearer token for the admin API is required", reason="admin_no_token")
    session = _session(request, rt)
    if session is None:
        raise InvalidToken("the console session is missing or has expired", reason="console_no_session")
    if (request.header(b"sec-fetch-site") or "same-origin") not in ("same-origin", "none"):
        raise CsrfRefused("cross-site request refused", reason="console_cross_site")
    token = request.header(CSRF_HEADER)
    if not token or not rt.console_logins.is_csrf_valid(session, token):
        raise CsrfRefused("the CSRF token is missing or wrong", reason="console_csrf")
    return session.actor, session.can_write, _session_tenant(session, rt)


def _page(status: int, body: bytes, content_type: bytes = b"text/html; charset=utf-8",
          extra: list[tuple[bytes, bytes]] | None = None) -> Response:
    return Response(status, body, [(b"content-type", content_type), *NO_STORE, *_SECURITY_HEADERS, *(extra or [])])


def _asset(name: str) -> bytes:
    return resources.files("warden.server").joinpath("console_assets", name).read_bytes()


def _message_page(status: int, title: str, text: str) -> Response:
    body = _asset("message.html").decode().replace("{{title}}", html.escape(title)).replace(
        "{{text}}", html.escape(text))
    return _page(status, body.encode())


def _set_cookie(rt: Runtime, value: str, max_age: int) -> tuple[bytes, bytes]:
    secure = "; Secure" if rt.issuer.startswith("https://") else ""
    return (b"set-cookie", f"{session_cookie_name(rt.issuer)}={value}; Path=/; Max-Age={max_age}; HttpOnly; "
                           f"SameSite=Strict{secure}".encode())


async def _login(request: Request, rt: Runtime) -> Response:
    values = parse_qs(request.query_string.decode("latin-1"), max_num_fields=4).get("t", [])
    parsed = rt.console_logins.parse_ticket(values[0]) if len(values) == 1 else None
    if parsed is None:
        rt.audit.emit("console.login", outcome="failure", reason="invalid_ticket", source=request.source)
        return _message_page(400, "Sign-in link not valid",
                             "This sign-in link is malformed or has expired. "
                             "Run `warden console login-url` for a new one.")
    nonce, exp, operator, can_write = parsed
    if not await rt.use_once(f"console-login:{nonce}", exp):
        rt.audit.emit("console.login", outcome="failure", reason="ticket_replayed", actor=operator,
                      source=request.source)
        return _message_page(400, "Sign-in link already used",
                             "Each sign-in link works once. Run `warden console login-url` for a new one.")
    session, cookie = rt.console_logins.open_session(operator, can_write)
    try:
        tenant = _session_tenant(session, rt)
    except InvalidToken:
        rt.audit.emit("console.login", outcome="failure", reason="invalid_ticket", actor=operator,
                      source=request.source)
        return _message_page(400, "Sign-in link not valid",
                             "The admin client that made this sign-in link is disabled or deleted.")
    rt.audit.emit("console.login", actor=session.actor, source=request.source, session_id=session.session_id,
                  can_write=can_write, tenant=tenant)
    return Response(303, b"", [(b"location", f"{PREFIX}/".encode()), *NO_STORE, *_SECURITY_HEADERS,
                               _set_cookie(rt, cookie, rt.settings.console.session_lifetime)])


async def _logout(request: Request, rt: Runtime) -> Response:
    actor, _, tenant = console_caller(request, rt)  # a cross-site page cannot sign an operator out either
    rt.audit.emit("console.logout", actor=actor, source=request.source, tenant=tenant)
    return Response(204, b"", [*NO_STORE, *_SECURITY_HEADERS, _set_cookie(rt, "", 0)])


def _session_info(request: Request, rt: Runtime) -> Response:
    session = _session(request, rt)
    if session is None:
        return json_response(401, {"signed_in": False}, [*NO_STORE, *_SECURITY_HEADERS])
    try:
        tenant = _session_tenant(session, rt)
    except InvalidToken:
        return json_response(401, {"signed_in": False}, [*NO_STORE, *_SECURITY_HEADERS])
    return json_response(200, {"signed_in": True, "operator": session.operator, "can_write": session.can_write,
                               "session_id": session.session_id, "expires_at": session.expires_at,
                               "tenant": tenant},
                         [*NO_STORE, *_SECURITY_HEADERS])


def _index(request: Request, rt: Runtime) -> Response:
    session = _session(request, rt)
    csrf = rt.console_logins.csrf_token(session) if session else ""
    body = _asset("index.html").decode().replace("{{csrf}}", html.escape(csrf))
    return _page(200, body.encode())


async def handle_console(request: Request, rt: Runtime) -> Response:
    """Answer one `/console...` request."""
    if not rt.settings.console.enabled:
        return json_response(404, {"error": "not_found"})
    path = request.path[len(PREFIX):]
    try:
        if request.method == "POST" and path == "/logout":
            return await _logout(request, rt)
        if request.method not in ("GET", "HEAD"):
            return json_response(405, {"error": "method_not_allowed"}, [(b"allow", b"GET")])
        if path == "":
            return Response(308, b"", [(b"location", f"{PREFIX}/".encode()), *_SECURITY_HEADERS])
        if path == "/":
            return await asyncio.to_thread(_index, request, rt)
        if path == "/login":
            return await _login(request, rt)
        if path == "/session":
            return _session_info(request, rt)
        name = path.removeprefix("/assets/")
        if name in _ASSETS:
            return Response(200, _asset(name), [(b"content-type", _ASSETS[name]), (b"cache-control", b"no-cache"),
                                                *_SECURITY_HEADERS])
    except OAuthError as exc:
        return json_response(exc.status, {"error": exc.error, "error_description": exc.description or ""},
                             [*NO_STORE, *_SECURITY_HEADERS])
    return json_response(404, {"error": "not_found"}, _SECURITY_HEADERS)
