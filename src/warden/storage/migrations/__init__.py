"""Schema migrations (Alembic), run from code: operators need no alembic.ini.

`upgrade_to_head` is safe to call from every process at startup. On PostgreSQL
the whole upgrade runs in one transaction holding an advisory lock, so a second
process waits, then finds the schema at head and does nothing. On SQLite the
upgrade runs inside `BEGIN IMMEDIATE`, which takes the database's single write
lock before Alembic reads the version table; a writer still holding it after the
busy timeout makes us retry a few times rather than fail a deploy.
"""

from __future__ import annotations

import threading
import time
import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import OperationalError

__all__ = ["alembic_config", "upgrade_to_head"]

SCRIPT_LOCATION = Path(__file__).resolve().parent

# Any fixed 64-bit number works; derive it from a name so it is recognisable in pg_locks.
_PG_LOCK_KEY = zlib.crc32(b"warden.migrate")
_SQLITE_ATTEMPTS = 5
# alembic.context and alembic.op are process-wide proxies: one migration per process at a time.
_IN_PROCESS = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic `Config` for this package; `env.py` migrates `connection` when given."""
    config = Config()
    # Config values go through ConfigParser interpolation, where "%" is special.
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Upgrade the database behind `engine` to the newest revision; a no-op when already there.

    Raises sqlalchemy errors unchanged; the store translates them.
    """
    with _IN_PROCESS:
        if engine.dialect.name == "sqlite":
            _upgrade_sqlite(engine)
        else:
            with engine.connect() as conn:
                conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
                command.upgrade(alembic_config(conn), "head")
                conn.commit()


def _upgrade_sqlite(engine: Engine) -> None:
    for attempt in range(_SQLITE_ATTEMPTS):
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                command.upgrade(alembic_config(conn), "head")
                conn.commit()
            return
        except OperationalError as exc:
            if "locked" not in str(exc.orig) or attempt == _SQLITE_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
