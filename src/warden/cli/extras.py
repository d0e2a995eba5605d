"""Which commands need the `server` extra, and the one line that says so when it is missing.

The base install (`pip install warden-m2m`) carries the client and resource-server
libraries, the agent, `warden token` and `warden verify`. The server, the local store
and the commands that manage it need the `server` extra; without it they refuse in one
line with exit 2 instead of failing on an import deep inside.
"""

from __future__ import annotations

import importlib.util

__all__ = ["DISTRIBUTION", "SERVER_MODULES", "is_server_module", "missing_server_modules", "needs_server_message"]

DISTRIBUTION = "warden-m2m"  # the name on the package index; the import package and command are `warden`
# Top-level modules of the server extra that every server-side command imports. (psycopg is only
# needed with a PostgreSQL URL and uvloop is optional; the store reports those itself.)
SERVER_MODULES = ("sqlalchemy", "alembic", "httptools", "prometheus_client")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_server_modules() -> list[str]:
    """The server extra's modules that cannot be imported here, in declaration order."""
    return [name for name in SERVER_MODULES if not _importable(name)]


def is_server_module(name: str | None) -> bool:
    """Whether a module that failed to import belongs to the server extra."""
    return bool(name) and str(name).split(".")[0] in SERVER_MODULES + ("psycopg", "uvloop")


def needs_server_message(command: str) -> str:
    return f"{command} needs the server extra: pip install '{DISTRIBUTION}[server]'"
