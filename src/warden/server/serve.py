"""`warden serve`: check the set-up once, then run uvicorn with N workers on one port.

Uvicorn with httptools and uvloop was chosen on measurements (see README,
"Why this server stack"). Workers are separate processes started by uvicorn's
supervisor, each building its own application from the same settings, which
are handed over through `WARDEN_*` environment variables (the environment wins
in `load_settings`, so the workers see exactly what the parent resolved).
SIGTERM stops accepting connections and drains in-flight requests for up to
`server.graceful_timeout` seconds.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

from warden.settings import Settings

__all__ = ["run_server", "settings_environment"]


def settings_environment(settings: Settings) -> dict[str, str]:
    """The WARDEN_* variables that reproduce the resolved settings in a worker process."""
    env = {
        "WARDEN_DATA_DIR": os.path.abspath(settings.data_dir),
        "WARDEN_ISSUER": settings.issuer_url,
        "WARDEN_SERVER_HOST": settings.server.host,
        "WARDEN_SERVER_PORT": str(settings.server.port),
        "WARDEN_SERVER_WORKERS": str(settings.server.workers),
    }
    if settings.database_url is not None:
        env["WARDEN_DATABASE_URL"] = settings.database_url.reveal()
    return env


def _prepare(settings: Settings) -> None:
    """Fail fast with one line if the store or the key-encryption key cannot be used."""
    from warden.core.clock import SystemClock
    from warden.services.audit import AuditSink
    from warden.services.kek import load_kek
    from warden.services.keyring import Keyring
    from warden.storage.engine import open_store

    material = load_kek(settings.keys.encryption_key.reveal() if settings.keys.encryption_key else None,
                        settings.data_dir)
    store = open_store(settings.database_url.reveal() if settings.database_url else None, settings.data_dir)
    try:
        store.migrate()
        Keyring(store, material, SystemClock(), AuditSink()).ensure_keys()
        from warden.services.keyring import signers_from_keys

        signers_from_keys(store.load_keys(), material)  # proves the KEK decrypts the stored keys
    finally:
        store.close()


def run_server(settings: Settings) -> int:
    import uvicorn

    _prepare(settings)
    os.environ.update(settings_environment(settings))
    if settings.server.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="warden-metrics-")
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sys.stderr.write(f"warden: serving {settings.issuer_url} on {settings.server.host}:{settings.server.port} "
                     f"with {settings.server.workers} worker(s), data in "
                     f"{'the configured database' if settings.database_url else os.path.abspath(settings.data_dir)}\n")
    uvicorn.run("warden.server.app:create_app", factory=True, host=settings.server.host,
                port=settings.server.port, workers=settings.server.workers, loop="uvloop", http="httptools",
                access_log=False, log_level=settings.log_level, server_header=False,
                timeout_graceful_shutdown=settings.server.graceful_timeout, lifespan="on")
    return 0
