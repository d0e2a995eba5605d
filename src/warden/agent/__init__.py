"""Warden token agent (`warden agent --config agent.toml`): a sidecar that holds client credentials.

For processes that cannot embed `warden.client` (other languages, cron jobs, CI
steps): it fetches and caches tokens with the client library, reloads a
credential when its file rotates, serves `GET /token?audience=...&scope=...`
on a loopback port or a unix socket, optionally mirrors each token into a 0600
file, and exposes `/healthz`, `/readyz` and `/metrics`. See `warden.agent.config`
for the file format and `run_agent` for the process entry point.

Imports only the base install (the client library and the standard library).
"""

from warden.agent._agent import Agent
from warden.agent._main import run_agent
from warden.agent.config import AgentConfig, CredentialConfig, TCPListen, UnixListen, load_agent_config

__all__ = [
    "Agent",
    "AgentConfig",
    "CredentialConfig",
    "TCPListen",
    "UnixListen",
    "load_agent_config",
    "run_agent",
]
