"""RFC 9728 protected resource metadata in warden.resource: the document, its well-known URL
(§3, with the path-suffixed form) and the `resource_metadata` challenge parameter (§5.1)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from warden.resource import AccessTokenMiddleware, Claims, ProtectedResourceMetadata, Validator, metadata_url
from warden.resource.fastapi import require_scopes, serve_resource_metadata


@pytest.mark.parametrize(("resource", "url"), [
    ("https://api.example", "https://api.example/.well-known/oauth-protected-resource"),
    ("https://api.example/", "https://api.example/.well-known/oauth-protected-resource"),
    ("https://api.example/orders", "https://api.example/.well-known/oauth-protected-resource/orders"),
    ("https://api.example:8443/a/b", "https://api.example:8443/.well-known/oauth-protected-resource/a/b"),
    ("https://api.example/v1?tenant=x", "https://api.example/.well-known/oauth-protected-resource/v1?tenant=x"),
])
def test_well_known_url_inserts_the_suffix_before_path_and_query(resource: str, url: str) -> None:
    assert metadata_url(resource) == url


def test_document_states_what_the_validator_enforces(validator: Validator) -> None:
    metadata = ProtectedResourceMetadata.for_validator(validator, scopes_supported=["read", "write"],
                                                       resource_name="Orders")
    document = metadata.document()
    assert document == {
        "resource": validator.audience,
        "authorization_servers": [validator.issuer],
        "scopes_supported": ["read", "write"],
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": list(validator.dpop.algorithms),
        "resource_name": "Orders",
    }


@pytest.mark.parametrize("resource", ["", "not a url", "ftp://x.example", "https://x.example/#frag",
                                      "http://api.example"])
def test_unusable_resource_identifiers_are_refused(resource: str) -> None:
    with pytest.raises(ValueError, match="resource"):
        ProtectedResourceMetadata(resource)


def test_scopes_must_be_a_list_not_a_string() -> None:
    with pytest.raises(ValueError, match="scopes_supported"):
        ProtectedResourceMetadata("https://api.example", scopes_supported="read")  # type: ignore[arg-type]


def _call(app: Any, method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            return await c.request(method, path, headers=headers)

    return asyncio.run(send())


def _starlette(validator: Validator, metadata: ProtectedResourceMetadata | bool) -> Any:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/orders", ok)])
    app.add_middleware(AccessTokenMiddleware, validator=validator, scopes=["read"],  # type: ignore[arg-type]
                       resource_metadata=metadata)
    return app


def test_middleware_serves_metadata_without_a_token_and_names_it_in_challenges(validator: Validator) -> None:
    metadata = ProtectedResourceMetadata.for_validator(validator, resource=f"{validator.audience}/orders",
                                                       scopes_supported=["read"])
    app = _starlette(validator, metadata)
    served = _call(app, "GET", "/.well-known/oauth-protected-resource/orders")
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    assert json.loads(served.content) == dict(metadata.document())
    assert _call(app, "HEAD", "/.well-known/oauth-protected-resource/orders").content == b""
    refused = _call(app, "POST", "/.well-known/oauth-protected-resource/orders")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    anonymous = _call(app, "GET", "/orders")
    assert anonymous.status_code == 401
    challenge = anonymous.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer resource_metadata="{metadata.url}"')
    assert "error=" not in challenge
    assert f'DPoP resource_metadata="{metadata.url}"' in challenge
    bad = _call(app, "GET", "/orders", {"Authorization": "Bearer not-a-jwt"})
    assert f'Bearer resource_metadata="{metadata.url}", error="invalid_token"' in bad.headers["www-authenticate"]


def test_middleware_true_derives_the_document_from_the_validator(validator: Validator) -> None:
    app = _starlette(validator, True)
    served = _call(app, "GET", "/.well-known/oauth-protected-resource")
    assert json.loads(served.content)["resource"] == validator.audience
    assert json.loads(served.content)["scopes_supported"] == ["read"]


def test_without_metadata_nothing_changes(validator: Validator) -> None:
    app = _starlette(validator, False)
    assert _call(app, "GET", "/.well-known/oauth-protected-resource").status_code == 401
    assert "resource_metadata" not in _call(app, "GET", "/orders").headers["www-authenticate"]


@pytest.mark.parametrize("middleware", [False, True])
def test_fastapi_serves_metadata_and_names_it(validator: Validator, middleware: bool) -> None:
    metadata = ProtectedResourceMetadata.for_validator(validator, scopes_supported=["read"])
    app = FastAPI()
    if middleware:
        app.add_middleware(AccessTokenMiddleware, validator=validator, optional=True,  # type: ignore[arg-type]
                           resource_metadata=metadata)
    else:
        serve_resource_metadata(app, metadata)
    reader = require_scopes("read", validator=None if middleware else validator,
                            resource_metadata=None if middleware else metadata)

    @app.get("/orders")
    async def orders(claims: Claims = Depends(reader)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    served = _call(app, "GET", "/.well-known/oauth-protected-resource")
    assert served.status_code == 200 and json.loads(served.content) == dict(metadata.document())
    assert served.headers["content-type"] == "application/json"
    anonymous = _call(app, "GET", "/orders")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith(f'Bearer resource_metadata="{metadata.url}"')
    assert "error=" not in anonymous.headers["www-authenticate"]
