"""Background renewal: the token file follows the token, and is removed once it has expired (F16)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import httpx

from warden.agent._credential import ManagedCredential
from warden.agent._renewal import keep_fresh
from warden.agent.config import CredentialConfig
from warden.client import ClientCredentials, RetryPolicy, Secret
from warden.core.clock import FixedClock


class AS:
    def __init__(self) -> None:
        self.issued = 0
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503, json={"error": "temporarily_unavailable"})
        self.issued += 1
        return httpx.Response(
            200, json={"access_token": f"at-{self.issued}", "token_type": "Bearer", "expires_in": 100}
        )


async def until(condition, steps: int = 500) -> None:
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def test_token_file_follows_renewals_and_is_removed_once_expired(tmp_path: Path):
    secret = tmp_path / "secret"
    secret.write_text("s1")
    token_file = tmp_path / "t.token"
    config = CredentialConfig(
        name="b",
        client_id="b",
        token_endpoint="https://as.example/token",
        client_secret_file=secret,
        audience="https://api.example",
        token_file=token_file,
    )
    server = AS()
    clock = FixedClock(0.0)

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server.handler)) as client:

            def factory(cfg: CredentialConfig, material: object) -> ClientCredentials:
                assert isinstance(material, Secret)
                return ClientCredentials(
                    token_endpoint=cfg.token_endpoint,
                    client_id=cfg.client_id,
                    client_secret=material,
                    audience=cfg.audience,
                    clock=clock,
                    async_http_client=client,
                    retry=RetryPolicy(max_attempts=1),
                )

            cred = ManagedCredential(config, factory)
            wake = asyncio.Event()
            task = asyncio.create_task(keep_fresh(cred, wake, 0.01, clock=clock.now))
            try:
                await until(token_file.exists)
                assert token_file.read_text() == "at-1" and stat.S_IMODE(token_file.stat().st_mode) == 0o600
                clock.advance(95)  # past the refresh point, before expiry
                wake.set()
                await until(lambda: token_file.read_text() == "at-2")
                server.down = True
                clock.advance(200)  # the file's token expired and no new one can be had
                wake.set()
                await until(lambda: not token_file.exists())
                server.down = False
                clock.advance(120)  # after the backoff, the next renewal succeeds
                wake.set()
                await until(token_file.exists)
                assert token_file.read_text() == "at-3"
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
