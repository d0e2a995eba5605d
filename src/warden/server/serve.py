"""`warden serve`: check the set-up once, bind the port, then serve with one process or N workers.

Warden serves HTTP/1.1 itself (`h1.py`, over httptools and uvloop) rather than
through uvicorn; the choice was made on measurements (see README, "Why this
server stack"). The ASGI application stays the definition of every endpoint:
the server calls the same `WardenApp.respond` the ASGI adapter calls.

With `--workers 1` the process serves directly. With more, a supervisor owns
the listening socket and spawns workers that share it (`supervisor.py`); each
worker receives the resolved `Settings` object, so a `--config` file and
command-line options reach the workers exactly as the parent resolved them,
secrets included (through the spawn pipe, never the environment). The
non-secret `WARDEN_*` variables are exported too for anything reading the
environment; the secret ones (database URL, Redis URL, key-encryption key) are
removed from the environment the workers inherit, so no worker's
/proc/PID/environ holds a password. With several workers, PROMETHEUS_MULTIPROC_DIR is set so /metrics
aggregates all of them. SIGTERM stops accepting connections and drains
in-flight requests for up to `server.graceful_timeout` seconds.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile

from warden.errors import WardenError
from warden.settings import Settings, environment_names, secret_paths

__all__ = ["run_server", "settings_environment"]


def settings_environment(settings: Settings) -> dict[str, str]:
    """The non-secret WARDEN_* variables of the resolved settings, exported for anything in a worker that
    reads the environment (workers take their settings, secrets included, from the spawn pipe)."""
    return {
        "WARDEN_DATA_DIR": os.path.abspath(settings.data_dir),
        "WARDEN_ISSUER": settings.issuer_url,
        "WARDEN_SERVER_HOST": settings.server.host,
        "WARDEN_SERVER_PORT": str(settings.server.port),
        "WARDEN_SERVER_WORKERS": str(settings.server.workers),
    }


def _drop_secret_environment() -> None:
    """Remove the variables that carry secret settings (not their `_FILE` forms, which name a file), so
    processes started from here do not inherit them."""
    secret_names = [name for name, path in environment_names().items() if path in secret_paths()]
    for name in secret_names:
        os.environ.pop(name, None)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise WardenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def run_server(settings: Settings) -> int:
    from warden.server.log_format import configure_logging
    from warden.server.supervisor import Supervisor
    from warden.server.worker import run_worker, tls_context
    from warden.services.bootstrap import prepare_store

    configure_logging(settings.log_level, settings.log.format)
    prepare_store(settings)  # fail fast, with one line, if the store or the key-encryption key cannot be used
    tls_context(settings)  # fail fast, with one line, on unusable TLS files
    os.environ.update(settings_environment(settings))
    _drop_secret_environment()
    if settings.server.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="warden-metrics-")
    sock = _listen(settings.server.host, settings.server.port)
    sys.stderr.write(f"warden: serving {settings.issuer_url} on {settings.server.host}:{settings.server.port} "
                     f"with {settings.server.workers} worker(s), data in "
                     f"{'the configured database' if settings.database_url else os.path.abspath(settings.data_dir)}\n")
    try:
        if settings.server.workers == 1:
            return run_worker(settings, sock)
        return Supervisor(settings, sock).run()
    finally:
        sock.close()
