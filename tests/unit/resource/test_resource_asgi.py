"""The ASGI middleware over Starlette and FastAPI apps, and the FastAPI dependency (in-process).

Requests go through `httpx.ASGITransport` (Starlette's TestClient now wants the `httpx2`
package); WebSocket handshakes are driven by hand.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterator, Sequence
from typing import Any, Self

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import Depends, FastAPI
from resource_helpers import NOW, FakeIssuer, make_certificate, make_proof, thumbprint
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from warden.jose import PrivateKey
from warden.resource import AccessTokenMiddleware, Claims, Validator, certificate_thumbprint
from warden.resource.fastapi import require_scopes

ALGS = 'algs="ES256 RS256 PS256 EdDSA"'


async def whoami(request: Request) -> JSONResponse:
    claims = request.state.warden_claims
    assert request.scope["warden.claims"] is claims
    return JSONResponse({"sub": claims.sub, "scope": sorted(claims.scope)})


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def maybe(request: Request) -> JSONResponse:
    claims = request.scope.get("warden.claims")
    return JSONResponse({"sub": claims.sub if claims else None})


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.scope["warden.claims"].sub)
    await websocket.close()


def starlette_app(validator: Validator, **options: object) -> Starlette:
    app = Starlette(routes=[
        Route("/orders", whoami, methods=["GET", "POST"]),
        Route("/healthz", health),
        Route("/maybe", maybe),
        WebSocketRoute("/ws", socket),
    ])
    app.add_middleware(AccessTokenMiddleware, validator=validator, **options)  # type: ignore[arg-type]
    return app


class AppClient:
    """Synchronous requests to an ASGI app, in-process."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def request(self, method: str, url: str, headers: Any = None) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return await client.request(method, url, headers=headers)

        return asyncio.run(send())

    def get(self, url: str, headers: Any = None) -> httpx.Response:
        return self.request("GET", url, headers)

    def post(self, url: str, headers: Any = None) -> httpx.Response:
        return self.request("POST", url, headers)

    def delete(self, url: str, headers: Any = None) -> httpx.Response:
        return self.request("DELETE", url, headers)

    def websocket(self, path: str, headers: Sequence[tuple[str, str]] = ()) -> list[dict[str, Any]]:
        """Run one WebSocket session; return what the app sent."""
        scope = {
            "type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": path,
            "raw_path": path.encode(), "query_string": b"", "root_path": "", "server": ("testserver", 80),
            "headers": [(b"host", b"testserver")] + [(k.lower().encode(), v.encode()) for k, v in headers],
            "subprotocols": [],
        }
        inbox: list[dict[str, Any]] = [{"type": "websocket.connect"}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return inbox.pop(0) if inbox else {"type": "websocket.disconnect", "code": 1000}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        asyncio.run(self.app(scope, receive, send))
        return sent


@pytest.fixture
def client(validator: Validator) -> Iterator[AppClient]:
    app = starlette_app(validator, scopes=["read"], realm="orders", exclude_paths=["/healthz"])
    with AppClient(app) as test_client:
        yield test_client


def test_valid_bearer_token_reaches_the_app_with_its_claims(client: AppClient, issuer: FakeIssuer) -> None:
    response = client.get("/orders", headers={"Authorization": f"Bearer {issuer.mint()}"})
    assert response.status_code == 200
    assert response.json() == {"sub": "svc-orders", "scope": ["read", "write"]}


def test_request_without_token_gets_a_bare_challenge(client: AppClient) -> None:
    response = client.get("/orders")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="orders", DPoP realm="orders", {ALGS}'
    assert response.headers["cache-control"] == "no-store"
    assert "error" not in response.json()


def test_invalid_token_is_401_invalid_token(client: AppClient, issuer: FakeIssuer) -> None:
    response = client.get("/orders", headers={"Authorization": f"Bearer {issuer.mint(exp=int(NOW) - 100)}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="orders", error="invalid_token", error_description="token expired", DPoP realm="orders", '
        f'{ALGS}')
    assert response.json() == {"error": "invalid_token", "error_description": "token expired"}


def test_insufficient_scope_is_403_with_the_scope(client: AppClient, issuer: FakeIssuer) -> None:
    response = client.get("/orders", headers={"Authorization": f"Bearer {issuer.mint(scope='write')}"})
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="orders", error="insufficient_scope"') and 'scope="read"' in challenge
    assert response.json()["error"] == "insufficient_scope"


def test_token_in_query_string_is_refused(client: AppClient, issuer: FakeIssuer) -> None:
    token = issuer.mint()
    for headers in ({}, {"Authorization": f"Bearer {token}"}):
        response = client.get(f"/orders?access_token={token}", headers=headers)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
        assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_two_authorization_headers_are_invalid_request(client: AppClient, issuer: FakeIssuer) -> None:
    token = issuer.mint()
    response = client.get("/orders", headers=[("Authorization", f"Bearer {token}"),
                                              ("Authorization", f"DPoP {token}")])
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_excluded_paths_need_no_token(client: AppClient) -> None:
    assert client.get("/healthz").text == "ok"


def test_dpop_bound_token_through_the_middleware(
    client: AppClient, issuer: FakeIssuer, keys: dict[str, PrivateKey]
) -> None:
    key = keys["ES256"]
    token = issuer.mint(cnf={"jkt": thumbprint(key)})
    proof = make_proof(key, "ES256", token=token, method="POST", url="http://testserver/orders")
    response = client.post("/orders?page=1", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert response.status_code == 200, response.text
    # Replayed proof, wrong method, and the §7.2 downgrade to Bearer:
    replay = client.post("/orders", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert replay.status_code == 401
    assert replay.headers["www-authenticate"].startswith('DPoP realm="orders", error="invalid_dpop_proof"')
    assert replay.json()["error"] == "invalid_dpop_proof"
    bearer = client.post("/orders", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 401 and bearer.json()["error"] == "invalid_token"


def test_public_url_is_used_for_the_htu_check(
    validator: Validator, issuer: FakeIssuer, keys: dict[str, PrivateKey]
) -> None:
    key = keys["PS256"]
    token = issuer.mint(cnf={"jkt": thumbprint(key)})
    app = starlette_app(validator, public_url="https://api.test/v1")
    with AppClient(app) as client:
        proof = make_proof(key, "PS256", token=token, url="https://api.test/v1/orders")
        response = client.get("/orders", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
        assert response.status_code == 200


def test_optional_mode_lets_anonymous_requests_through(validator: Validator, issuer: FakeIssuer) -> None:
    with AppClient(starlette_app(validator, optional=True)) as client:
        assert client.get("/maybe").json() == {"sub": None}
        assert client.get("/maybe", headers={"Authorization": f"Bearer {issuer.mint()}"}).json() == {
            "sub": "svc-orders"}
        assert client.get("/maybe", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_websocket_handshake_is_refused_without_a_token(client: AppClient, issuer: FakeIssuer) -> None:
    assert client.websocket("/ws") == [{"type": "websocket.close", "code": 1008}]
    sent = client.websocket("/ws", headers=[("Authorization", f"Bearer {issuer.mint()}")])
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["text"] == "svc-orders"


def test_issuer_outage_from_the_start_is_503(client: AppClient, issuer: FakeIssuer) -> None:
    issuer.fail = True
    response = client.get("/orders", headers={"Authorization": f"Bearer {issuer.mint()}"})
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert "www-authenticate" not in response.headers


def test_certificate_from_a_trusted_proxy_header(validator: Validator, issuer: FakeIssuer) -> None:
    cert, other = make_certificate("svc"), make_certificate("intruder")
    token = issuer.mint(cnf={"x5t#S256": certificate_thumbprint(cert)})
    app = starlette_app(validator, client_cert_header="Client-Cert")
    with AppClient(app) as client:
        def call(certificate: object) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            if certificate is not None:
                der = certificate.public_bytes(Encoding.DER)  # type: ignore[attr-defined]
                headers["Client-Cert"] = ":" + base64.b64encode(der).decode() + ":"
            return client.get("/orders", headers=headers).status_code

        assert call(cert) == 200
        assert call(other) == 401
        assert call(None) == 401


def test_certificate_from_the_asgi_tls_extension(validator: Validator, issuer: FakeIssuer) -> None:
    cert = make_certificate("svc")
    token = issuer.mint(cnf={"x5t#S256": certificate_thumbprint(cert)})
    pem = cert.public_bytes(Encoding.PEM).decode()
    inner = starlette_app(validator)

    async def with_tls(scope, receive, send):  # type: ignore[no-untyped-def]
        scope["extensions"] = {"tls": {"client_cert_chain": [pem]}}
        await inner(scope, receive, send)

    with AppClient(with_tls) as client:
        assert client.get("/orders", headers={"Authorization": f"Bearer {token}"}).status_code == 200


# -- FastAPI ---------------------------------------------------------------------------------


def fastapi_app(validator: Validator, *, middleware: bool) -> FastAPI:
    app = FastAPI()
    if middleware:
        app.add_middleware(AccessTokenMiddleware, validator=validator, realm="orders")  # type: ignore[arg-type]
    dependency_validator = None if middleware else validator

    reader = require_scopes("read", validator=dependency_validator)
    admin = require_scopes("admin", validator=dependency_validator, realm="orders")

    @app.get("/orders")
    async def orders(claims: Claims = Depends(reader)) -> dict[str, str]:  # noqa: B008 - FastAPI idiom
        return {"client_id": claims.client_id}

    @app.delete("/orders")
    async def delete(claims: Claims = Depends(admin)) -> dict[str, str]:  # noqa: B008
        return {"deleted_by": claims.client_id}

    return app


@pytest.mark.parametrize("middleware", [True, False])
def test_fastapi_dependency_requires_scopes(validator: Validator, issuer: FakeIssuer, middleware: bool) -> None:
    with AppClient(fastapi_app(validator, middleware=middleware)) as client:
        token = issuer.mint(scope="read")
        ok = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json() == {"client_id": "svc-orders"}
        denied = client.delete("/orders", headers={"Authorization": f"Bearer {token}"})
        assert denied.status_code == 403
        assert denied.headers["www-authenticate"].startswith('Bearer realm="orders", error="insufficient_scope"')
        assert 'scope="admin"' in denied.headers["www-authenticate"]
        missing = client.get("/orders")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        expired = client.get("/orders", headers={"Authorization": f"Bearer {issuer.mint(exp=int(NOW) - 99)}"})
        assert expired.status_code == 401
        assert 'error="invalid_token"' in expired.headers["www-authenticate"]


def test_fastapi_dependency_without_validator_or_middleware_is_a_setup_error() -> None:
    app = FastAPI()

    unconfigured = require_scopes("read")

    @app.get("/x")
    async def x(claims: Claims = Depends(unconfigured)) -> dict[str, str]:  # noqa: B008
        return {}

    with AppClient(app) as client, pytest.raises(RuntimeError):
        client.get("/x", headers={"Authorization": "Bearer abc"})


def test_fastapi_openapi_declares_the_bearer_scheme(validator: Validator) -> None:
    schema = fastapi_app(validator, middleware=False).openapi()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_tokens_never_reach_the_logs(
    validator: Validator, issuer: FakeIssuer, keys: dict[str, PrivateKey], caplog: pytest.LogCaptureFixture
) -> None:
    # T54: a canary token through every outcome, with every logger at DEBUG.
    key = keys["ES256"]
    tokens = [
        issuer.mint(), issuer.mint(exp=int(NOW) - 999), issuer.mint(scope="none"), issuer.mint(aud="x"),
        issuer.mint(cnf={"jkt": thumbprint(key)}), issuer.mint(header={"kid": "unknown"}),
    ]
    secrets = [t for t in tokens] + [t.split(".")[2] for t in tokens] + [t.split(".")[1] for t in tokens]
    app = starlette_app(validator, scopes=["read"])
    with caplog.at_level(logging.DEBUG), AppClient(app) as client:
        for token in tokens:
            client.get("/orders", headers={"Authorization": f"Bearer {token}"})
            client.get("/orders", headers={"Authorization": f"DPoP {token}", "DPoP": "x.y.z"})
            # (A token in the query string is refused, but it is already in every access log on the
            # way, the test client's own httpx log included; that is why RFC 6750 §2.3 discourages it.)
        issuer.fail = True
        validator.jwks.refresh()
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "access token refused" in text  # the reasons are logged ...
    for secret in secrets:
        assert secret not in text  # ... never the token


def test_fastapi_dependency_behind_optional_middleware(validator: Validator, issuer: FakeIssuer) -> None:
    app = FastAPI()
    app.add_middleware(AccessTokenMiddleware, validator=validator, optional=True)  # type: ignore[arg-type]
    reader = require_scopes("read")

    @app.get("/public")
    async def public() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/private")
    async def private(claims: Claims = Depends(reader)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    with AppClient(app) as client:
        assert client.get("/public").json() == {"hello": "world"}
        anonymous = client.get("/private")
        assert anonymous.status_code == 401 and "error=" not in anonymous.headers["www-authenticate"]
        ok = client.get("/private", headers={"Authorization": f"Bearer {issuer.mint()}"})
        assert ok.json() == {"sub": "svc-orders"}


def test_fastapi_dependency_checks_certificate_bound_tokens(validator: Validator, issuer: FakeIssuer) -> None:
    cert, other = make_certificate("svc"), make_certificate("intruder")
    token = issuer.mint(cnf={"x5t#S256": certificate_thumbprint(cert)})
    app = FastAPI()
    reader = require_scopes("read", validator=validator, client_cert_header="Client-Cert")

    @app.get("/orders")
    async def orders(claims: Claims = Depends(reader)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    def header(certificate: Any) -> str:
        return ":" + base64.b64encode(certificate.public_bytes(Encoding.DER)).decode() + ":"

    with AppClient(app) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert client.get("/orders", headers={**auth, "Client-Cert": header(cert)}).status_code == 200
        refused = client.get("/orders", headers={**auth, "Client-Cert": header(other)})
        assert refused.status_code == 401 and refused.json()["detail"]["error"] == "invalid_token"
        assert client.get("/orders", headers=auth).status_code == 401
