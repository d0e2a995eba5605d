"""End to end: a live Warden server issues, `warden.client` fetches, `warden.resource` validates.

The resource server is a Starlette app behind `AccessTokenMiddleware`, served by
uvicorn on its own free port; discovery and keys come from the Warden server
over HTTP (RFC 8414, RFC 7517). Rotation checks SECURITY F08: keys are published
as `next` before they sign, so a resource server that cached the key set keeps
validating through a rotation without refetching.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from warden.client import ClientCredentials
from warden.resource import AccessTokenMiddleware, Validator

LiveServer = Any  # tests/integration/conftest.py's LiveServer (not imported: every test dir has a `conftest`)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _token(server: LiveServer, client_id: str, secret: str, api: str, scope: str = "read") -> str:
    response = server.token(client_id, secret, resource=api, scope=scope)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])  # the algorithms a Warden API may choose
def test_warden_tokens_validate_by_discovery(sqlite_server: LiveServer, alg: str) -> None:
    api = sqlite_server.api(scopes="read write", alg=alg)
    client_id, secret = sqlite_server.client_when_ready({api: "read"})
    token = _token(sqlite_server, client_id, secret, api)
    validator = Validator(sqlite_server.issuer, api)
    claims = validator.validate(token, scopes=["read"])
    assert claims.client_id == claims.sub == client_id
    assert claims.iss == sqlite_server.issuer and api in claims.aud
    assert claims.scope == frozenset({"read"})
    other = Validator(sqlite_server.issuer, sqlite_server.api())  # T43: another API refuses it
    with pytest.raises(Exception) as caught:
        other.validate(token)
    assert getattr(caught.value, "error", None) == "invalid_token"


def test_rotation_needs_no_refetch(sqlite_server: LiveServer) -> None:
    api = sqlite_server.api(alg="ES256")
    client_id, secret = sqlite_server.client_when_ready({api: "read"})
    validator = Validator(sqlite_server.issuer, api)
    before = _token(sqlite_server, client_id, secret, api)
    validator.validate(before)
    fetches = validator.jwks.fetches
    activated = sqlite_server.admin.rotate_keys(["ES256"])
    assert activated
    assert wait_until(lambda: _kid(_token(sqlite_server, client_id, secret, api)) in activated, timeout=5)
    after = _token(sqlite_server, client_id, secret, api)
    assert _kid(after) != _kid(before)
    validator.validate(after)
    validator.validate(before)  # the retired key is still published
    assert validator.jwks.fetches == fetches


def _kid(token: str) -> str:
    import base64
    import json

    head = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"])


@pytest.fixture
def resource_server(sqlite_server: LiveServer) -> Iterator[Callable[[str], str]]:
    """Start a Starlette resource server for an API identifier; returns its base URL."""
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(api: str) -> str:
        async def orders(request: Request) -> JSONResponse:
            claims = request.state.warden_claims
            return JSONResponse({"client_id": claims.client_id, "scope": sorted(claims.scope)})

        app = Starlette(routes=[Route("/orders", orders)])
        validator = Validator(sqlite_server.issuer, api)
        app.add_middleware(AccessTokenMiddleware, validator=validator, scopes=["read"],  # type: ignore[arg-type]
                           realm="orders")
        port = free_port()
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


def test_client_library_calls_a_protected_api(
    sqlite_server: LiveServer, resource_server: Callable[[str], str]
) -> None:
    api = sqlite_server.api(scopes="read write")
    client_id, secret = sqlite_server.client_when_ready({api: "read write"})
    base = resource_server(api)
    credentials: dict[str, Any] = {"client_id": client_id, "client_secret": secret, "audience": api,
                                   "allow_insecure_http": True}
    with httpx.Client(timeout=10) as http:
        ok = http.get(f"{base}/orders", auth=ClientCredentials(sqlite_server.issuer, scope="read", **credentials))
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"client_id": client_id, "scope": ["read"]}
        denied = http.get(f"{base}/orders",
                          auth=ClientCredentials(sqlite_server.issuer, scope="write", **credentials))
        assert denied.status_code == 403
        assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
        anonymous = http.get(f"{base}/orders")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith('Bearer realm="orders"')
