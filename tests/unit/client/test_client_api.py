"""The public surface of warden.client and warden.agent, and their light dependency footprint."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import warden.agent
import warden.client

CLIENT_API = {
    "Discovery",
    "ResourceMetadata",
    "discover_authorization_server",
    "adiscover_authorization_server",
    "ClientCredentials",
    "AccessToken",
    "TokenError",
    "Secret",
    "SigningKey",
    "DPoPKey",
    "RefreshPolicy",
    "RetryPolicy",
    "TokenStats",
    "CacheEntry",
    "CacheKey",
    "AuthMethod",
    "CLIENT_AUTH_METHODS",
    "Clock",
    "MonotonicClock",
    "SECRET_ENV_VAR",
}
AGENT_API = {
    "run_agent",
    "load_agent_config",
    "Agent",
    "AgentConfig",
    "CredentialConfig",
    "TCPListen",
    "UnixListen",
}


def test_client_exports_are_deliberate():
    assert set(warden.client.__all__) == CLIENT_API
    assert all(hasattr(warden.client, name) for name in CLIENT_API)


def test_agent_exports_are_deliberate():
    assert set(warden.agent.__all__) == AGENT_API
    assert all(hasattr(warden.agent, name) for name in AGENT_API)


def test_client_and_agent_import_without_server_packages_or_requests():
    blocked = [
        "uvicorn",
        "starlette",
        "fastapi",
        "sqlalchemy",
        "alembic",
        "psycopg",
        "prometheus_client",
        "requests",
        "pydantic",
    ]
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        BLOCKED = {blocked!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError("blocked: " + name)
                return None
        sys.meta_path.insert(0, Block())
        import warden.client, warden.agent
        from warden.client import ClientCredentials
        cc = ClientCredentials("https://as.example", client_id="c", client_secret="s")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok")
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
