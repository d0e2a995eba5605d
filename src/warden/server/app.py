"""The ASGI application: routing table, request limits, error rendering, lifespan."""

from __future__ import annotations

import logging
import secrets
from typing import Awaitable, Callable

from warden.errors import StorageError
from warden.protocol.errors import InvalidRequest, OAuthError, TemporarilyUnavailable
from warden.server import endpoints
from warden.server.http import BodyTooLarge, Receive, Request, Response, Scope, Send, json_response, read_body
from warden.server.render import render_error
from warden.server.runtime import Runtime
from warden.settings import Settings, load_settings
from warden.storage.contract import Store

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
}
_GET_ONLY = {"/oauth2/jwks", "/.well-known/oauth-authorization-server", "/healthz", "/readyz", "/metrics"}


class WardenApp:
    """Plain ASGI 3 application."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._trusted = frozenset(runtime.settings.server.trusted_proxies)

    def _source(self, scope: Scope, headers: dict[bytes, bytes]) -> str:
        peer = scope.get("client")
        address = peer[0] if peer else "unknown"
        if address in self._trusted:
            forwarded = headers.get(b"x-forwarded-for")
            if forwarded:
                return forwarded.split(b",")[-1].strip().decode("latin-1")[:64]
        return address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = ROUTES.get(scope["path"])
        if route is None:
            await json_response(404, {"error": "not_found"}).send(send)
            return
        endpoint, has_body = route
        request = Request.from_scope(scope, "")
        request.source = self._source(scope, request.headers)
        if scope["path"] in _GET_ONLY and request.method not in ("GET", "HEAD"):
            await json_response(405, {"error": "method_not_allowed"}, [(b"allow", b"GET")]).send(send)
            return
        try:
            if has_body:
                request.body = await read_body(receive, self.runtime.settings.limits.max_body_bytes)
            response = await endpoint(request, self.runtime)
        except BodyTooLarge:
            response = render_error(InvalidRequest("request body too large", reason="body_too_large"))
            response.status = 413
        except OAuthError as exc:
            response = render_error(exc)
        except StorageError as exc:
            log.warning("storage error on %s: %s", scope["path"], exc)
            response = render_error(TemporarilyUnavailable("storage unavailable", reason="storage_error"))
        except Exception:
            correlation = secrets.token_hex(8)
            log.exception("unhandled error on %s (correlation id %s)", scope["path"], correlation)
            response = json_response(500, {"error": "server_error", "error_description":
                                           f"internal error, correlation id {correlation}"})
        await response.send(send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.runtime.start()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.runtime.stop()
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
