"""The token agent over real sockets: TCP and unix socket, rotation, token file, Host checks, health, metrics.

Fixture seam: `token_server` (tests/integration/fake_authorization_server.py) is the authorization server the agent talks
to (`issuer`, `client_id`, current secret, `rotate_secret()`, `token_requests`).
Today it is a small local fake; pointing it at the real Warden server only
changes that fixture.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from tests.integration.fake_authorization_server import FakeAuthorizationServer

from warden.agent import Agent, run_agent
from warden.agent.config import parse_agent_config
from warden.client import RetryPolicy

AUDIENCE = "https://api.example"


@pytest.fixture
def token_server() -> Iterator[FakeAuthorizationServer]:
    server = FakeAuthorizationServer("billing", "secret-one", token_value=lambda number, secret: f"at-{number}-{secret}")
    yield server
    server.close()


@pytest.fixture
def secret_file(tmp_path: Path, token_server: FakeAuthorizationServer) -> Path:
    path = tmp_path / "billing.secret"
    path.write_text(token_server.secret + "\n")
    return path


def agent_config(
    tmp_path: Path, token_server: FakeAuthorizationServer, listen: str = "127.0.0.1:0", **credential: object
):
    table = {
        "issuer": token_server.issuer,
        "client_id": token_server.client_id,
        "client_secret_file": "billing.secret",
        "audience": AUDIENCE,
        "scope": "read write",
        **credential,
    }
    return parse_agent_config({"listen": listen, "credentials": [table]}, tmp_path)


@asynccontextmanager
async def running(config, **kwargs) -> AsyncIterator[httpx.AsyncClient]:
    kwargs.setdefault("poll_interval", 0.05)
    async with Agent(config, **kwargs) as agent:
        if agent.address.startswith("unix:"):
            transport = httpx.AsyncHTTPTransport(uds=agent.address.removeprefix("unix:"))
            base = "http://localhost"
        else:
            transport, base = httpx.AsyncHTTPTransport(), agent.address
        async with httpx.AsyncClient(transport=transport, base_url=base, timeout=5) as client:
            yield client


async def eventually(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


def test_token_is_served_over_tcp_and_then_from_cache(tmp_path, token_server, secret_file):
    async def scenario() -> None:
        async with running(agent_config(tmp_path, token_server)) as client:
            first = await client.get("/token", params={"audience": AUDIENCE, "scope": "read write"})
            assert first.status_code == 200
            document = first.json()
            assert set(document) >= {"access_token", "token_type", "expires_in"}
            assert document["token_type"] == "Bearer" and 290 <= document["expires_in"] <= 300
            assert first.headers["cache-control"] == "no-store"
            assert "access-control-allow-origin" not in first.headers
            second = await client.get("/token", params={"audience": AUDIENCE, "scope": "write read"})
            assert second.json()["access_token"] == document["access_token"]
            narrower = await client.get("/token", params={"audience": AUDIENCE, "scope": "read"})
            assert narrower.status_code == 200 and narrower.json()["scope"] == "read"
            only = await client.get("/token")  # one credential: audience may be omitted
            assert only.json()["access_token"] == document["access_token"]

    asyncio.run(scenario())
    scopes = sorted(r.get("scope", "") for r in token_server.forms)
    assert scopes == ["read", "read write"] and all(
        r["resource"] == AUDIENCE for r in token_server.forms
    )


def test_token_is_served_over_a_unix_socket_created_0600(tmp_path, token_server, secret_file):
    socket_path = tmp_path / "agent.sock"

    async def scenario() -> None:
        async with running(agent_config(tmp_path, token_server, f"unix:{socket_path}")) as client:
            assert stat.S_ISSOCK(socket_path.lstat().st_mode)
            assert stat.S_IMODE(socket_path.lstat().st_mode) == 0o600
            response = await client.get("/token", params={"audience": AUDIENCE})
            assert response.status_code == 200 and response.json()["access_token"].startswith("at-")

    asyncio.run(scenario())
    assert not socket_path.exists()  # removed on shutdown


def test_stale_socket_is_replaced_but_a_regular_file_is_not(tmp_path, token_server, secret_file):
    import socket as socket_module

    stale = tmp_path / "stale.sock"
    leftover = socket_module.socket(socket_module.AF_UNIX)
    leftover.bind(str(stale))
    leftover.close()  # a socket file with nobody listening, as a crashed agent leaves it
    regular = tmp_path / "regular"
    regular.write_text("data")

    async def scenario() -> None:
        async with running(agent_config(tmp_path, token_server, f"unix:{stale}")) as client:
            assert (await client.get("/healthz")).status_code == 200
        from warden.errors import ConfigError

        with pytest.raises(ConfigError, match="not a socket"):
            async with running(agent_config(tmp_path, token_server, f"unix:{regular}")):
                pass

    asyncio.run(scenario())
    assert regular.read_text() == "data"


def test_rotated_secret_file_is_picked_up_without_restart(tmp_path, token_server, secret_file, caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with running(agent_config(tmp_path, token_server)) as client:
            before = (await client.get("/token")).json()["access_token"]
            assert before.endswith("-secret-one")
            os.utime(secret_file)  # touched but unchanged: the cached token stays
            await asyncio.sleep(0.2)
            assert (await client.get("/token")).json()["access_token"] == before
            token_server.rotate_secret("secret-two")
            secret_file.write_text("secret-two\n")

            async def rotated() -> bool:
                return (await client.get("/token")).json()["access_token"].endswith("-secret-two")

            await eventually(rotated)
            metrics = (await client.get("/metrics")).text
            assert 'warden_agent_credential_reloads_total{credential="billing"} 1' in metrics

    asyncio.run(scenario())
    assert token_server.presented[-1][1] == "secret-two"
    assert "reloaded after rotation" in caplog.text
    assert "secret-one" not in caplog.text and "secret-two" not in caplog.text


def test_token_file_is_written_0600_and_renewed(tmp_path, token_server, secret_file):
    token_file = tmp_path / "run" / "billing.token"
    token_file.parent.mkdir()

    async def scenario() -> None:
        config = agent_config(tmp_path, token_server, token_file="run/billing.token")
        async with running(config) as client:

            async def written() -> bool:
                return token_file.exists()

            await eventually(written)
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
            served = (await client.get("/token", params={"scope": "read write"})).json()["access_token"]
            assert token_file.read_text() == served
            token_server.rotate_secret("secret-two")
            secret_file.write_text("secret-two")

            async def renewed() -> bool:
                return token_file.read_text().endswith("-secret-two")

            await eventually(renewed)
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
            assert sorted(p.name for p in token_file.parent.iterdir()) == ["billing.token"]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"Host": "rebind.attacker.example:4180"},
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Mode": "cors"},
    ],
)
def test_requests_that_are_not_local_tools_are_refused(tmp_path, token_server, secret_file, headers):
    async def scenario() -> None:
        async with running(agent_config(tmp_path, token_server)) as client:
            response = await client.get("/token", headers=headers)
            assert response.status_code == 403 and "access_token" not in response.text
            assert (await client.post("/token")).status_code == 405

    asyncio.run(scenario())


def test_health_readiness_and_metrics(tmp_path, token_server, secret_file):
    async def scenario() -> None:
        async with running(agent_config(tmp_path, token_server)) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await eventually(ready)
            served = (await client.get("/token")).json()["access_token"]
            await client.get("/token", params={"scope": "read"})
            metrics = await client.get("/metrics")
            assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
            text = metrics.text
            assert 'warden_agent_cache_hits_total{credential="billing"} 1' in text
            assert 'warden_agent_cache_misses_total{credential="billing"} 1' in text
            assert 'warden_agent_token_renewals_total{credential="billing"} 0' in text
            assert 'warden_agent_token_failures_total{credential="billing"} 0' in text
            assert (
                'warden_agent_token_expiry_seconds{credential="billing",audience="https://api.example",'
                'scope="read write"} 29' in text
            )
            assert 'warden_agent_http_requests_total{path="/token",status="200"} 2' in text
            # the warden.client series too (METRICS_CONTRACT): M5 cache hits and misses, fetch latency
            assert 'warden_client_token_cache_total{credential="billing",result="miss"}' in text
            assert 'warden_client_token_cache_total{credential="billing",result="hit"}' in text
            assert 'warden_client_token_fetch_seconds_count{credential="billing"}' in text
            assert "warden_client_token_fetch_seconds_count{credential=\"billing\"} 0" not in text
            assert served not in text and token_server.secret not in text
            assert (await client.get("/nope")).status_code == 404

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"audience": "https://other.example"}, 404),
        ({"audience": AUDIENCE, "scope": "admin"}, 404),
        ({"audience": AUDIENCE, "scope": "bad  scope"}, 400),
        ({"audience": AUDIENCE, "extra": "1"}, 400),
    ],
)
def test_requests_outside_the_configuration_are_refused(tmp_path, token_server, secret_file, params, status):
    async def scenario() -> None:
        async with running(agent_config(tmp_path, token_server)) as client:
            assert (await client.get("/token", params=params)).status_code == status

    asyncio.run(scenario())


def test_unavailable_authorization_server_gives_503_with_retry_after(tmp_path, token_server, secret_file):
    token_server.status = 503

    async def scenario() -> None:
        retry = RetryPolicy(base_delay=0.01, max_delay=0.02, max_attempts=2, deadline=1)
        async with running(agent_config(tmp_path, token_server), retry=retry) as client:
            response = await client.get("/token")
            assert response.status_code == 503 and "retry-after" in response.headers
            assert response.json()["error"] == "temporarily_unavailable"
            assert (await client.get("/readyz")).status_code == 503

    asyncio.run(scenario())


def test_mismatched_issuer_in_metadata_is_never_trusted(tmp_path, token_server, secret_file):
    token_server.metadata_issuer = "https://attacker.example"

    async def scenario() -> None:
        async with running(agent_config(tmp_path, token_server)) as client:
            response = await client.get("/token")
            assert response.status_code == 503 and response.json()["error"] == "issuer_mismatch"

    asyncio.run(scenario())
    assert token_server.token_requests == 0  # the secret never went anywhere (T62, T68)


def test_run_agent_reports_configuration_errors(tmp_path, capsys):
    config = tmp_path / "agent.toml"
    config.write_text('listen = "0.0.0.0:4180"\n')
    assert run_agent(config) == 2
    assert "not a loopback address" in capsys.readouterr().err


def test_run_agent_serves_until_sigterm(tmp_path, token_server, secret_file):
    socket_path = tmp_path / "agent.sock"
    config = tmp_path / "agent.toml"
    config.write_text(
        textwrap.dedent(f"""
        listen = "unix:{socket_path}"
        [[credentials]]
        issuer = "{token_server.issuer}"
        client_id = "{token_server.client_id}"
        client_secret_file = "billing.secret"
        audience = "{AUDIENCE}"
    """)
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from warden.agent import run_agent; raise SystemExit(run_agent({str(config)!r}))",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path))) as client:
            assert client.get("http://localhost/token").status_code == 200
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert not socket_path.exists()
    assert b"secret-one" not in stderr and b"at-1" not in stderr
