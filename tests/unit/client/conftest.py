"""Fixtures for stepping the sans-I/O token flow and for in-memory authorization servers.

Nothing here opens a socket: flows are stepped by hand, and drivers talk to an
`httpx.MockTransport`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import httpx
import pytest

from warden.client._client_auth import ClientAuthentication
from warden.client._discovery import EndpointResolver
from warden.client._dpop import DPoPKey
from warden.client._flow import RefreshPolicy, RetryPolicy, Token, TokenFlow
from warden.client._messages import HTTPResponse, Reply, Send, Sleep, Step
from warden.client._request import CacheKey, TokenRequestFactory
from warden.core.clock import FixedClock
from warden.secret import Secret

TOKEN_ENDPOINT = "https://as.example/oauth2/token"
ISSUER = "https://as.example"


class Draws:
    """A random() stand-in that returns the given values in turn, then repeats the last."""

    def __init__(self, *values: float) -> None:
        self.values = list(values) or [0.5]

    def __call__(self) -> float:
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


def token_response(
    access_token: str = "at-1", *, token_type: str = "Bearer", expires_in: object = 300, **extra: object
) -> HTTPResponse:
    document: dict[str, object] = {"access_token": access_token, "token_type": token_type, **extra}
    if expires_in is not None:
        document["expires_in"] = expires_in
    return HTTPResponse(200, {"content-type": "application/json"}, json.dumps(document).encode())


def error_response(
    status: int,
    error: str | None = None,
    description: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> HTTPResponse:
    if body is None:
        document = {"error": error} if error else {}
        if description:
            document["error_description"] = description
        body = json.dumps(document).encode()
    return HTTPResponse(status, headers or {}, body)


@dataclass
class Run:
    """The record of driving one exchange by hand."""

    sends: list[Send] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    result: Token | None = None
    error: Exception | None = None


def drive(
    exchange: Generator[Step, Reply, Token],
    replies: list[Reply | HTTPResponse],
    clock: FixedClock,
    latency: float = 0.0,
) -> Run:
    """Step an exchange: answer each Send with the next reply, advance the clock on each Sleep."""
    run = Run()
    queue = list(replies)
    reply: Reply = None
    try:
        while True:
            step = exchange.send(reply)
            if isinstance(step, Sleep):
                run.sleeps.append(step.seconds)
                clock.advance(step.seconds)
                reply = None
            else:
                run.sends.append(step)
                clock.advance(latency)
                if not queue:
                    raise AssertionError("the flow sent more requests than the test scripted")
                reply = queue.pop(0)
    except StopIteration as stop:
        run.result = stop.value
    except Exception as exc:
        run.error = exc
    return run


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(1000.0)


FlowFactory = Callable[..., TokenFlow]


@pytest.fixture
def make_flow(clock: FixedClock) -> FlowFactory:
    def factory(
        *,
        key: CacheKey = ("https://api.example", frozenset({"read"})),
        random: Callable[[], float] | None = None,
        refresh: RefreshPolicy | None = None,
        retry: RetryPolicy | None = None,
        dpop_key: DPoPKey | None = None,
        endpoint: EndpointResolver | None = None,
    ) -> TokenFlow:
        auth = ClientAuthentication("client-1", "client_secret_basic", secret=Secret("s3cr3t"))
        requests = TokenRequestFactory(auth, dpop_key=dpop_key, wall_clock=lambda: 1_700_000_000.0)
        return TokenFlow(
            key,
            requests=requests,
            endpoint=endpoint or EndpointResolver(issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT),
            clock=clock,
            random=random or Draws(0.5),
            refresh=refresh or RefreshPolicy(),
            retry=retry or RetryPolicy(),
        )

    return factory


class MockAS:
    """An in-memory authorization server behind `httpx.MockTransport`, counting token requests."""

    issuer = "https://as.example"

    def __init__(self, *, expires_in: int = 300, token_type: str = "Bearer") -> None:
        self.expires_in = expires_in
        self.token_type = token_type
        self.token_requests: list[httpx.Request] = []
        self.metadata_requests = 0
        self.scripted: list[httpx.Response] = []  # answered before normal issuing
        self.gate: threading.Event | None = None  # token requests block until set
        self._lock = threading.Lock()

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/oauth-authorization-server":
            with self._lock:
                self.metadata_requests += 1
            return httpx.Response(
                200, json={"issuer": self.issuer, "token_endpoint": f"{self.issuer}/oauth2/token"}
            )
        if request.url.path == "/oauth2/token":
            with self._lock:
                self.token_requests.append(request)
                number = len(self.token_requests)
                scripted = self.scripted.pop(0) if self.scripted else None
            if self.gate is not None:
                self.gate.wait(5)
            if scripted is not None:
                return scripted
            return httpx.Response(
                200,
                json={
                    "access_token": f"at-{number}",
                    "token_type": self.token_type,
                    "expires_in": self.expires_in,
                },
            )
        return httpx.Response(404)

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        return self.handler(request)


@pytest.fixture
def mock_as() -> MockAS:
    return MockAS()


@pytest.fixture(name="drive")
def drive_fixture() -> Callable[..., Run]:
    return drive


@pytest.fixture(name="token_response")
def token_response_fixture() -> Callable[..., HTTPResponse]:
    return token_response


@pytest.fixture(name="error_response")
def error_response_fixture() -> Callable[..., HTTPResponse]:
    return error_response


@pytest.fixture(name="draws")
def draws_fixture() -> type[Draws]:
    return Draws
