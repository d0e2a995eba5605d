"""The client library over real sockets: discovery, authentication, single flight, retries, adapters.

Fixture seam: `token_server` is the authorization server under test (its
`issuer`, a registered `client_id`/`client_secret`, and a count of token
requests). Today it is a small local fake; a later change points the same
tests at the real Warden server by changing that fixture alone.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
import requests
from tests.integration.fake_authorization_server import FakeAuthorizationServer, QuietServer

from warden.client import ClientCredentials, RetryPolicy, SigningKey, TokenError
from warden.jose import load_public_jwk, parse_compact

AUDIENCE = "https://api.example"


@pytest.fixture
def token_server() -> Iterator[FakeAuthorizationServer]:
    server = FakeAuthorizationServer()
    yield server
    server.close()


def source(server: FakeAuthorizationServer, **kwargs: object) -> ClientCredentials:
    kwargs.setdefault("client_secret", server.client_secret)
    return ClientCredentials(
        server.issuer, client_id=server.client_id, audience=AUDIENCE, scope="read", **kwargs
    )  # type: ignore[arg-type]


def test_discovers_the_endpoint_and_fetches_a_token(token_server):
    cc = source(token_server)
    assert cc.get_token() == "at-1"
    assert cc.token_endpoint == f"{token_server.issuer}/oauth2/token"
    assert token_server.forms == [{"grant_type": "client_credentials", "scope": "read", "resource": AUDIENCE}]
    assert asyncio.run(cc.aget_token()) == "at-1"  # same cache from async code


def test_client_secret_post_sends_the_credentials_in_the_body(token_server):
    cc = source(token_server, auth_method="client_secret_post")
    assert cc.get_token() == "at-1"
    form = token_server.forms[0]
    assert (form["client_id"], form["client_secret"]) == (token_server.client_id, token_server.client_secret)


def test_wrong_secret_raises_invalid_client_once(token_server):
    cc = source(token_server, client_secret="wrong")
    with pytest.raises(TokenError) as caught:
        cc.get_token()
    assert (caught.value.error, caught.value.status, caught.value.retryable) == ("invalid_client", 401, False)
    assert token_server.token_requests == 1


def test_tampered_metadata_aborts_before_any_credential_is_sent(token_server):
    token_server.metadata = {
        "issuer": "https://evil.example",
        "token_endpoint": f"{token_server.issuer}/oauth2/token",
    }
    cc = source(token_server)
    with pytest.raises(TokenError) as caught:
        cc.get_token()
    assert caught.value.error == "issuer_mismatch" and token_server.token_requests == 0  # T62


def test_assertion_for_a_malicious_issuer_cannot_be_replayed_at_the_honest_one(token_server):
    # T61: an attacker's AS publishes metadata naming itself as issuer but the honest token endpoint.
    honest_endpoint = f"{token_server.issuer}/oauth2/token"
    evil = FakeAuthorizationServer()
    evil.metadata = {"issuer": evil.issuer, "token_endpoint": honest_endpoint}
    try:
        key = SigningKey.generate("ES256")
        cc = ClientCredentials(
            evil.issuer,
            client_id="orders",
            private_key=key,
            audience=AUDIENCE,
            retry=RetryPolicy(max_attempts=1),
        )
        with pytest.raises(TokenError):
            cc.get_token()
    finally:
        evil.close()
    assertion = parse_compact(token_server.forms[0]["client_assertion"])
    assertion.verify(load_public_jwk(key.public_jwk()), ["ES256"])
    assert assertion.claims()["aud"] == evil.issuer  # not the honest endpoint: useless at the honest AS


def test_two_hundred_threads_on_a_cold_cache_cause_one_request(token_server):
    token_server.delay = 0.2
    cc = source(token_server)
    results: list[str] = []
    barrier = threading.Barrier(200)

    def call() -> None:
        barrier.wait()
        results.append(cc.get_token())

    threads = [threading.Thread(target=call) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["at-1"] * 200 and token_server.token_requests == 1


def test_two_hundred_tasks_on_a_cold_cache_cause_one_request(token_server):
    token_server.delay = 0.1
    cc = source(token_server)

    async def scenario() -> list[str]:
        return await asyncio.gather(*(cc.aget_token() for _ in range(200)))

    assert asyncio.run(scenario()) == ["at-1"] * 200 and token_server.token_requests == 1


def test_503_and_429_are_retried_honouring_retry_after(token_server):
    token_server.failures = [(503, {"Retry-After": "0"}), (429, {"Retry-After": "0"})]
    sleeps: list[float] = []
    cc = source(token_server, sleep=sleeps.append, retry=RetryPolicy(base_delay=0.01, max_delay=0.02))
    assert cc.get_token() == "at-3"
    assert len(sleeps) == 2 and all(0 <= s <= 0.02 for s in sleeps)


def test_unreachable_server_is_a_retryable_network_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cc = ClientCredentials(
        f"http://127.0.0.1:{port}",
        client_id="c",
        client_secret="s",
        retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01),
        timeout=2,
    )
    with pytest.raises(TokenError) as caught:
        cc.get_token()
    assert caught.value.error == "network_error" and caught.value.retryable and caught.value.status is None


class ResourceServer:
    """A protected API on 127.0.0.1 that accepts only the tokens in `valid`."""

    def __init__(self, valid: set[str]) -> None:
        self.valid = valid
        self.authorizations: list[str] = []
        resource = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                authorization = self.headers.get("Authorization", "")
                resource.authorizations.append(authorization)
                ok = authorization.partition(" ")[2] in resource.valid
                self.send_response(200 if ok else 401)
                if not ok:
                    self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/items"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def resource_server() -> Iterator[ResourceServer]:
    server = ResourceServer({"at-2"})
    yield server
    server.close()


def test_httpx_and_requests_adapters_refetch_once_on_invalid_token(token_server, resource_server):
    cc = source(token_server)
    with httpx.Client(auth=cc) as client:
        assert client.get(resource_server.url).status_code == 200
    assert resource_server.authorizations == ["Bearer at-1", "Bearer at-2"]
    resource_server.valid = {"at-3"}
    with requests.Session() as session:
        assert session.get(resource_server.url, auth=cc.requests_auth()).status_code == 200
    assert resource_server.authorizations[2:] == ["Bearer at-2", "Bearer at-3"]
    assert token_server.token_requests == 3
