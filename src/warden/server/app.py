"""The application: routing table, request limits, error rendering, lifespan.

`WardenApp.respond` is the one seam between the wire and the endpoints: it
routes a parsed `Request`, runs the endpoint and turns every failure into a
response. Both transports call it: the ASGI adapter (`__call__`, used by the
tests through uvicorn and by anyone mounting Warden in an ASGI server) and
Warden's own HTTP/1.1 server behind `warden serve` (`h1.py`). Neither adds
behaviour of its own beyond framing.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from warden.errors import Conflict, NotFound, StorageError
from warden.protocol.errors import (
    ContentTooLarge,
    EndpointNotFound,
    MethodNotAllowed,
    OAuthError,
    ServerError,
    StateConflict,
    TemporarilyUnavailable,
)
from warden.server import endpoints
from warden.server.admin_api import handle_admin
from warden.server.console import handle_console
from warden.server.http import BodyTooLarge, Receive, Request, Response, Scope, Send, read_body
from warden.server.metrics import route_of
from warden.server.render import render_error
from warden.server.runtime import Runtime
from warden.services.steps import tracing_active
from warden.settings import Settings, load_settings
from warden.storage.contract import Store

if TYPE_CHECKING:
    from warden.server.tracing import RequestTracer

__all__ = ["WardenApp", "create_app"]

log = logging.getLogger("warden.server")

Endpoint = Callable[[Request, Runtime], Awaitable[Response]]

ROUTES: dict[str, tuple[Endpoint, bool]] = {  # path -> (endpoint, reads a body)
    "/oauth2/token": (endpoints.token, True),
    "/oauth2/introspect": (endpoints.introspect, True),
    "/oauth2/revoke": (endpoints.revoke, True),
    "/oauth2/jwks": (endpoints.jwks, False),
    "/.well-known/oauth-authorization-server": (endpoints.metadata, False),
    "/healthz": (endpoints.healthz, False),
    "/readyz": (endpoints.readyz, False),
    "/metrics": (endpoints.metrics, False),
    "/oauth2/status": (endpoints.status_lists, False),
    "/oauth2/register": (endpoints.register, True),
}
ADMIN_PREFIX = "/admin/v1/"
STATUS_PREFIX = "/oauth2/status/"
REGISTRATION_PREFIX = "/oauth2/register/"  # RFC 7592: registration_client_uri = <this><client_id>
_CODES = {code: str(code) for code in range(100, 600)}
_GET_ONLY = {"/oauth2/jwks", "/.well-known/oauth-authorization-server", "/healthz", "/readyz", "/metrics",
             "/oauth2/status"}


class WardenApp:
    """Plain ASGI 3 application, and the request/response seam for Warden's own server."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.max_body_bytes = runtime.settings.limits.max_body_bytes
        self._trusted = frozenset(runtime.settings.server.trusted_proxies)
        self._count_http = runtime.metrics.http
        self._tracer: RequestTracer | None = None
        if tracing_active():
            from warden.server.tracing import RequestTracer

            self._tracer = RequestTracer()

    # the seam ------------------------------------------------------------------
    def source_of(self, peer: str | None, headers: dict[bytes, bytes]) -> str:
        """The client address for throttling and audit: the peer, or X-Forwarded-For from a trusted proxy."""
        address = peer or "unknown"
        if address in self._trusted:
            forwarded = headers.get(b"x-forwarded-for")
            if forwarded:
                return forwarded.split(b",")[-1].strip().decode("latin-1")[:64]
        return address

    @staticmethod
    def reads_body(path: str) -> bool:
        route = ROUTES.get(path)
        return (route is not None and route[1]) or path.startswith((ADMIN_PREFIX, REGISTRATION_PREFIX))

    def body_too_large(self) -> Response:
        response = render_error(ContentTooLarge("request body too large", reason="body_too_large"))
        self._count_http("other", "413").inc()
        return response

    async def respond(self, request: Request) -> Response:
        """Route and answer one request, turning every error into its standard response; never raises."""
        route = route_of(request.path)
        if self._tracer is not None:
            with self._tracer.start(request.method, route, request.headers) as span:
                response = await self._respond(request)
                span.set_attribute("http.response.status_code", response.status)
        else:
            response = await self._respond(request)
        self._count_http(route, _CODES.get(response.status) or str(response.status)).inc()
        return response

    async def _respond(self, request: Request) -> Response:
        route = ROUTES.get(request.path)
        try:
            if route is None:
                if request.path.startswith(ADMIN_PREFIX):
                    return await handle_admin(request, self.runtime, self.runtime.admin)
                if request.path == "/console" or request.path.startswith("/console/"):
                    return await handle_console(request, self.runtime)
                if request.path.startswith(REGISTRATION_PREFIX):
                    client_id = request.path[len(REGISTRATION_PREFIX):]
                    if not client_id or "/" in client_id:
                        raise EndpointNotFound(reason="not_found")
                    return await endpoints.registration(request, self.runtime, client_id)
                if request.path.startswith(STATUS_PREFIX):
                    if request.method not in ("GET", "HEAD"):
                        raise MethodNotAllowed(reason="method_not_allowed", allow="GET")
                    return await endpoints.status_list(request, self.runtime, request.path[len(STATUS_PREFIX):])
                raise EndpointNotFound(reason="not_found")
            if request.path in _GET_ONLY and request.method not in ("GET", "HEAD"):
                raise MethodNotAllowed(reason="method_not_allowed", allow="GET")
            return await route[0](request, self.runtime)
        except OAuthError as exc:
            return render_error(exc)
        except NotFound:  # outside the admin API (which answers these itself) a record vanished mid-request
            return render_error(EndpointNotFound(reason="not_found"))
        except Conflict:
            return render_error(StateConflict(reason="conflict"))
        except StorageError as exc:
            log.warning("storage error on %s: %s", request.path, exc)
            return render_error(TemporarilyUnavailable("storage unavailable", reason="storage_error"))
        except Exception:
            correlation = secrets.token_hex(8)
            log.exception("unhandled error on %s (correlation id %s)", request.path, correlation)
            return render_error(ServerError(f"internal error, correlation id {correlation}", reason="server_error"))

    async def startup(self) -> None:
        await self.runtime.start()

    async def shutdown(self) -> None:
        await self.runtime.stop()

    # ASGI ------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request.from_scope(scope, "")
        peer = scope.get("client")
        request.peer = peer[0] if peer else ""
        request.source = self.source_of(request.peer or None, request.headers)
        if self.reads_body(request.path):
            try:
                request.body = await read_body(receive, self.max_body_bytes)
            except BodyTooLarge:
                await self.body_too_large().send(send)
                return
        response = await self.respond(request)
        await response.send(send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings | None = None, store_factory: Callable[[], Store] | None = None,
               **runtime_options: object) -> WardenApp:
    """Application factory (`uvicorn --factory warden.server.app:create_app`)."""
    settings = settings or load_settings()
    if store_factory is None:
        from warden.storage.engine import open_store

        url = settings.database_url.reveal() if settings.database_url else None
        data_dir = settings.data_dir

        def store_factory() -> Store:
            return open_store(url, data_dir)

    return WardenApp(Runtime(settings, store_factory, **runtime_options))  # type: ignore[arg-type]
