"""The agent process: `run_agent(config_path)` runs until SIGTERM or SIGINT and returns an exit status.

The CLI calls it as `sys.exit(run_agent(path))` for `warden agent --config agent.toml`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from warden.agent._agent import Agent
from warden.agent.config import AgentConfig, load_agent_config
from warden.core.redaction import configure_logging
from warden.errors import ConfigError

__all__ = ["run_agent"]

logger = logging.getLogger("warden.agent")


async def _serve(config: AgentConfig) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals
            pass
    try:
        async with Agent(config) as agent:
            logger.info("warden agent serving %d credential(s) on %s", len(agent.credentials), agent.address)
            await stop.wait()
            logger.info("warden agent stopping")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return 0


def run_agent(config_path: str | os.PathLike[str]) -> int:
    """Run the agent until SIGTERM or SIGINT; return the process exit status.

    0 after a graceful stop, 2 for a configuration problem (message on stderr,
    naming the key or file), 1 when the listen address cannot be used.
    """
    if not logging.getLogger().handlers:
        configure_logging(logging.INFO, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_agent_config(config_path)
        return asyncio.run(_serve(config))
    except ConfigError as exc:
        print(f"warden agent: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"warden agent: cannot start: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # signals could not be routed to the loop
        return 0
