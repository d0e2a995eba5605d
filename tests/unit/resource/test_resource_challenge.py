"""Issue 8 #12, RFC 6750 §3.1: a request without credentials (or with another scheme) gets a
challenge with no error code; a bad token still gets `error="invalid_token"`. Checked through the
ASGI middleware, the FastAPI dependency alone and the dependency behind the middleware."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from resource_helpers import NOW, FakeIssuer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from warden.resource import AccessTokenMiddleware, Claims, Validator
from warden.resource.fastapi import require_scopes


def _asgi(validator: Validator) -> Any:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/orders", ok)])
    app.add_middleware(AccessTokenMiddleware, validator=validator, realm="orders")  # type: ignore[arg-type]
    return app


def _fastapi(validator: Validator, middleware: bool) -> Any:
    app = FastAPI()
    if middleware:
        app.add_middleware(AccessTokenMiddleware, validator=validator, realm="orders", optional=True)  # type: ignore[arg-type]
    reader = require_scopes("read", validator=None if middleware else validator, realm="orders")

    @app.get("/orders")
    async def orders(claims: Claims = Depends(reader)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    return app


def _get(app: Any, headers: dict[str, str]) -> httpx.Response:
    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            return await c.get("/orders", headers=headers)

    return asyncio.run(send())


@pytest.mark.parametrize("kind", ["asgi", "fastapi", "fastapi+middleware"])
def test_no_credentials_get_a_challenge_without_error_code(validator: Validator, issuer: FakeIssuer,
                                                           kind: str) -> None:
    app = _asgi(validator) if kind == "asgi" else _fastapi(validator, middleware=kind.endswith("middleware"))
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = _get(app, headers)
        assert response.status_code == 401, (kind, headers)
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="orders"'), challenge
        assert "error=" not in challenge and "error_description=" not in challenge, challenge
    for bad in ("not-a-jwt", issuer.mint(exp=int(NOW) - 99)):
        response = _get(app, {"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401
        assert 'Bearer realm="orders", error="invalid_token"' in response.headers["www-authenticate"]
    assert _get(app, {"Authorization": f"Bearer {issuer.mint()}"}).status_code == 200
