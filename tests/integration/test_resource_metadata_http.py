"""Issue 12 item 3, end to end over HTTP: resource servers built with `warden.resource` (a Starlette app
behind `AccessTokenMiddleware`, a FastAPI app with the dependency) run under uvicorn and serve RFC 9728
metadata; a client that knows only the resource URL gets a 401, discovers the real Warden server from
it with `warden.client`, fetches a token and calls the resource."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.integration.conftest import LiveServer, free_port, wait_until

from warden.client import (
    ClientCredentials,
    TokenError,
    adiscover_authorization_server,
    discover_authorization_server,
)
from warden.resource import AccessTokenMiddleware, Claims, ProtectedResourceMetadata, Validator
from warden.resource.fastapi import require_scopes, serve_resource_metadata


@pytest.fixture
def serve() -> Iterator[Callable[[Any, int], str]]:
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Any, port: int) -> str:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off", access_log=False))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        assert wait_until(lambda: server.started, timeout=10)
        started.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=10)


def _register(server: LiveServer, resource: str) -> tuple[str, str]:
    server.admin.save_api(resource, ["read", "write"], ttl=900, alg="ES256")
    return server.client_when_ready({resource: "read"})


def _starlette(validator: Validator, metadata: ProtectedResourceMetadata | bool) -> Starlette:
    async def orders(request: Request) -> JSONResponse:
        return JSONResponse({"client_id": request.state.warden_claims.client_id})

    app = Starlette(routes=[Route("/orders", orders), Route("/orders/{n}", orders)])
    app.add_middleware(AccessTokenMiddleware, validator=validator, scopes=["read"],  # type: ignore[arg-type]
                       resource_metadata=metadata)
    return app


def test_asgi_resource_with_a_path_serves_metadata_and_a_client_discovers_warden(
        sqlite_server: LiveServer, serve: Callable[[Any, int], str]) -> None:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/orders"
    cid, secret = _register(sqlite_server, resource)
    base = serve(_starlette(Validator(sqlite_server.issuer, resource), True), port)
    with httpx.Client(timeout=10) as http:
        # RFC 9728 §3: the path-suffixed well-known URL, no token needed
        document = http.get(f"{base}/.well-known/oauth-protected-resource/orders")
        assert document.status_code == 200 and document.headers["content-type"] == "application/json"
        body = document.json()
        assert body["resource"] == resource
        assert body["authorization_servers"] == [sqlite_server.issuer]
        assert body["scopes_supported"] == ["read"]
        assert body["bearer_methods_supported"] == ["header"]
        assert "ES256" in body["dpop_signing_alg_values_supported"]
        # §5.1: the challenge names it; no credentials → no error code (RFC 6750 §3.1)
        anonymous = http.get(resource)
        assert anonymous.status_code == 401
        expected = f'resource_metadata="{base}/.well-known/oauth-protected-resource/orders"'
        assert anonymous.headers["www-authenticate"].startswith(f"Bearer {expected}")
        assert "error=" not in anonymous.headers["www-authenticate"]
        bad = http.get(resource, headers={"authorization": "Bearer x.y.z"})
        assert f'Bearer {expected}, error="invalid_token"' in bad.headers["www-authenticate"]
        # the client knows only the resource: discovery, then a token from the real Warden server
        found = discover_authorization_server(anonymous, http_client=http)
        assert found.issuer == sqlite_server.issuer and found.audience == resource
        assert found.authorization_server.token_endpoint == f"{sqlite_server.url}/oauth2/token"
        auth = ClientCredentials(found.issuer, client_id=cid, client_secret=secret, audience=found.audience,
                                 scope="read", allow_insecure_http=True)
        ok = http.get(resource, auth=auth)
        assert ok.status_code == 200 and ok.json() == {"client_id": cid}
        # §3.3: a deeper URL does not match exactly; the prefix rule (opt-in) accepts it
        deeper = http.get(f"{resource}/42")
        with pytest.raises(TokenError) as caught:
            discover_authorization_server(deeper, http_client=http)
        assert caught.value.error == "resource_mismatch"
        assert discover_authorization_server(deeper, http_client=http, resource_match="prefix").audience == resource


def test_a_resource_whose_metadata_names_another_resource_is_not_trusted(
        sqlite_server: LiveServer, serve: Callable[[Any, int], str]) -> None:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/orders"
    _register(sqlite_server, resource)
    lying = ProtectedResourceMetadata(f"http://127.0.0.1:{port}/billing",
                                      authorization_servers=[sqlite_server.issuer])
    base = serve(_starlette(Validator(sqlite_server.issuer, resource), lying), port)
    with httpx.Client(timeout=10) as http:
        anonymous = http.get(f"{base}/orders")
        assert "oauth-protected-resource/billing" in anonymous.headers["www-authenticate"]
        for match in ("exact", "prefix"):
            with pytest.raises(TokenError) as caught:
                discover_authorization_server(anonymous, http_client=http, resource_match=match)  # type: ignore[arg-type]
            assert caught.value.error == "resource_mismatch"


def test_fastapi_resource_at_the_origin_serves_metadata_and_async_discovery_works(
        sqlite_server: LiveServer, serve: Callable[[Any, int], str]) -> None:
    port = free_port()
    resource = f"http://127.0.0.1:{port}"
    cid, secret = _register(sqlite_server, resource)
    validator = Validator(sqlite_server.issuer, resource)
    metadata = ProtectedResourceMetadata.for_validator(validator, scopes_supported=["read", "write"])
    app = FastAPI()
    serve_resource_metadata(app, metadata)
    reader = require_scopes("read", validator=validator, resource_metadata=metadata)

    @app.get("/")
    async def root(claims: Claims = Depends(reader)) -> dict[str, str]:  # noqa: B008
        return {"client_id": claims.client_id}

    base = serve(app, port)

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            document = (await http.get(f"{base}/.well-known/oauth-protected-resource")).json()
            assert document["resource"] == resource and document["scopes_supported"] == ["read", "write"]
            anonymous = await http.get(f"{base}/")
            assert anonymous.status_code == 401
            challenge = anonymous.headers["www-authenticate"]
            assert f'resource_metadata="{base}/.well-known/oauth-protected-resource"' in challenge
            assert "error=" not in challenge
            # the client called "{base}/": the same URL as the resource "{base}" (empty path = "/")
            found = await adiscover_authorization_server(anonymous, http_client=http)
            assert found.issuer == sqlite_server.issuer and found.audience == resource
            auth = ClientCredentials(found.issuer, client_id=cid, client_secret=secret, audience=found.audience,
                                     allow_insecure_http=True)
            ok = await http.get(f"{base}/", auth=auth)
            assert ok.status_code == 200 and ok.json() == {"client_id": cid}

    asyncio.run(scenario())
