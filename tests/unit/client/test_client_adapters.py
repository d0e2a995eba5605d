"""httpx.Auth (sync, async) and requests auth: add the token; on 401 invalid_token refetch once, retry."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from warden.client import ClientCredentials, DPoPKey, TokenError
from warden.jose import parse_compact

API = "https://api.example/v1/items"


class ResourceServer:
    """Accepts only the tokens in `valid`; answers 401 with the configured challenge otherwise."""

    def __init__(self, valid: set[str], challenge: str = 'Bearer error="invalid_token"') -> None:
        self.valid = valid
        self.challenge = challenge
        self.seen: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.seen.append(request)
        _, _, token = request.headers.get("authorization", "").partition(" ")
        if token in self.valid:
            return httpx.Response(200, json={"ok": True, "token": token})
        return httpx.Response(401, headers={"www-authenticate": self.challenge})


def routed(mock_as, rs):
    def handler(request: httpx.Request) -> httpx.Response:
        return mock_as.handler(request) if request.url.host == "as.example" else rs(request)

    return handler


def source(mock_as, **kwargs) -> tuple[ClientCredentials, httpx.Client]:
    token_client = httpx.Client(transport=httpx.MockTransport(mock_as.handler))
    return ClientCredentials(
        mock_as.issuer,
        client_id="c1",
        client_secret="s1",
        audience="https://api.example",
        http_client=token_client,
        **kwargs,
    ), token_client


def test_httpx_auth_adds_the_bearer_token(mock_as):
    rs = ResourceServer({"at-1"})
    cc, token_client = source(mock_as)
    with token_client, httpx.Client(transport=httpx.MockTransport(rs), auth=cc) as client:
        response = client.get(API)
    assert response.status_code == 200 and rs.seen[0].headers["authorization"] == "Bearer at-1"


def test_invalid_token_triggers_one_refetch_and_retry(mock_as):
    rs = ResourceServer({"at-2"})  # at-1 was revoked
    cc, token_client = source(mock_as)
    with token_client, httpx.Client(transport=httpx.MockTransport(rs), auth=cc) as client:
        response = client.get(API)
    assert response.status_code == 200 and response.json()["token"] == "at-2"
    assert len(rs.seen) == 2 and len(mock_as.token_requests) == 2


def test_invalid_token_is_retried_once_not_more(mock_as):
    rs = ResourceServer(set())
    cc, token_client = source(mock_as)
    with token_client, httpx.Client(transport=httpx.MockTransport(rs), auth=cc) as client:
        response = client.get(API)
    assert response.status_code == 401
    assert len(rs.seen) == 2 and len(mock_as.token_requests) == 2


@pytest.mark.parametrize("challenge", ['Bearer realm="api"', 'Bearer error="insufficient_scope"', "Basic"])
def test_other_401s_are_returned_without_a_refetch(mock_as, challenge):
    rs = ResourceServer(set(), challenge)
    cc, token_client = source(mock_as)
    with token_client, httpx.Client(transport=httpx.MockTransport(rs), auth=cc) as client:
        assert client.get(API).status_code == 401
    assert len(rs.seen) == 1 and len(mock_as.token_requests) == 1


def test_async_httpx_auth_refetches_once_and_retries(mock_as):
    rs = ResourceServer({"at-2"})

    async def scenario() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.MockTransport(mock_as.async_handler)) as token_client:
            cc = ClientCredentials(
                mock_as.issuer, client_id="c1", client_secret="s1", async_http_client=token_client
            )
            async with httpx.AsyncClient(transport=httpx.MockTransport(rs), auth=cc) as client:
                return await client.get(API)

    response = asyncio.run(scenario())
    assert response.status_code == 200 and len(rs.seen) == 2 and len(mock_as.token_requests) == 2


def test_async_httpx_auth_retries_once_not_more(mock_as):
    rs = ResourceServer(set())

    async def scenario() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.MockTransport(mock_as.async_handler)) as token_client:
            cc = ClientCredentials(
                mock_as.issuer, client_id="c1", client_secret="s1", async_http_client=token_client
            )
            async with httpx.AsyncClient(transport=httpx.MockTransport(rs), auth=cc) as client:
                return await client.get(API)

    assert asyncio.run(scenario()).status_code == 401
    assert len(rs.seen) == 2 and len(mock_as.token_requests) == 2


def test_concurrent_rejections_of_one_token_cost_one_refetch(mock_as):
    rs = ResourceServer({"at-2"})
    cc, token_client = source(mock_as)
    statuses: list[int] = []
    barrier = threading.Barrier(40)
    with token_client, httpx.Client(transport=httpx.MockTransport(rs), auth=cc) as client:
        cc.get_token()  # everyone starts with at-1, which the RS no longer accepts

        def call() -> None:
            barrier.wait()
            statuses.append(client.get(API).status_code)

        threads = [threading.Thread(target=call) for _ in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert statuses == [200] * 40 and len(mock_as.token_requests) == 2


def test_cross_origin_redirect_does_not_carry_the_token(mock_as):
    seen: list[httpx.Request] = []

    def rs(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "api.example":
            return httpx.Response(302, headers={"location": "https://elsewhere.example/steal"})
        return httpx.Response(200)

    cc, token_client = source(mock_as)
    with (
        token_client,
        httpx.Client(transport=httpx.MockTransport(rs), auth=cc, follow_redirects=True) as client,
    ):
        client.get(API)
    assert "authorization" in seen[0].headers and "authorization" not in seen[1].headers  # T64


def test_allowed_origins_keep_the_token_away_from_other_hosts(mock_as):
    rs = ResourceServer({"at-1"})
    cc, token_client = source(mock_as, allowed_origins=["https://api.example"])
    with token_client, httpx.Client(transport=httpx.MockTransport(rs), auth=cc) as client:
        assert client.get(API).status_code == 200
        with pytest.raises(TokenError) as caught:
            client.get("https://counterfeit.example/v1/items")
    assert caught.value.error == "origin_not_allowed" and len(rs.seen) == 1


def test_dpop_token_is_presented_with_a_proof_and_rs_nonce_is_honoured(mock_as):
    mock_as.token_type = "DPoP"
    calls: list[httpx.Request] = []

    def rs(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        proof = parse_compact(request.headers["dpop"]).claims()
        if proof.get("nonce") != "rs-nonce":
            return httpx.Response(
                401, headers={"www-authenticate": 'DPoP error="use_dpop_nonce"', "dpop-nonce": "rs-nonce"}
            )
        return httpx.Response(200)

    cc, token_client = source(mock_as, dpop_key=DPoPKey.generate())
    with token_client, httpx.Client(transport=httpx.MockTransport(rs), auth=cc) as client:
        assert client.get(API).status_code == 200
        assert client.get(API).status_code == 200  # the nonce is remembered for the origin
    assert calls[0].headers["authorization"] == "DPoP at-1"
    assert "ath" in parse_compact(calls[0].headers["dpop"]).claims()
    assert len(calls) == 3 and len(mock_as.token_requests) == 1


class RequestsAdapter(BaseAdapter):
    """A requests transport that answers from an httpx-style handler, without a network."""

    def __init__(self, handler) -> None:
        super().__init__()
        self.handler = handler

    def send(self, request, **kwargs):
        answer = self.handler(httpx.Request(request.method, request.url, headers=dict(request.headers)))
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(answer.headers)
        response._content = answer.content
        response.url = request.url
        response.request = request
        response.connection = self
        return response

    def close(self) -> None:
        pass


def requests_session(rs) -> requests.Session:
    session = requests.Session()
    session.mount("https://", RequestsAdapter(rs))
    return session


def test_requests_auth_adds_the_token_and_retries_once_on_invalid_token(mock_as):
    rs = ResourceServer({"at-2"})
    cc, token_client = source(mock_as)
    with token_client, requests_session(rs) as session:
        response = session.get(API, auth=cc.requests_auth())
    assert response.status_code == 200 and response.json()["token"] == "at-2"
    assert len(rs.seen) == 2 and len(response.history) == 1 and len(mock_as.token_requests) == 2


def test_requests_auth_retries_once_not_more(mock_as):
    rs = ResourceServer(set())
    cc, token_client = source(mock_as)
    with token_client, requests_session(rs) as session:
        response = session.get(API, auth=cc.requests_auth())
    assert response.status_code == 401 and len(rs.seen) == 2 and len(mock_as.token_requests) == 2


def test_requests_auth_leaves_other_answers_alone(mock_as):
    rs = ResourceServer({"at-1"})
    cc, token_client = source(mock_as)
    with token_client, requests_session(rs) as session:
        assert session.get(API, auth=cc.requests_auth()).status_code == 200
        assert session.get(API, auth=cc.requests_auth(audience="https://api.example")).status_code == 200
    assert len(rs.seen) == 2 and len(mock_as.token_requests) == 1
