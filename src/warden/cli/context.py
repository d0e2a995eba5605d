"""Builds what admin commands need (settings, store, key material, audit) from global options.

CLI audit events go to the configured audit file, or to `<data_dir>/audit.log` when the
server's sink is stdout, so command output stays clean and admin changes are still recorded.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager

from warden.errors import ConfigError
from warden.settings import Settings, load_settings

__all__ = ["admin_session", "require_data_dir", "settings_from_args"]


def settings_from_args(args: argparse.Namespace, **extra: object) -> Settings:
    overrides: dict[str, object] = {"data_dir": getattr(args, "data_dir", None),
                                    "database_url": getattr(args, "database_url", None), **extra}
    return load_settings(getattr(args, "config", None), None, **overrides)


def require_data_dir(settings: Settings) -> None:
    """Only `warden serve` and `warden init` create a data directory: a mistyped --data-dir must not
    silently become a new, empty store."""
    if settings.database_url is None and not os.path.isdir(settings.data_dir):
        raise ConfigError(f"no data directory at {os.path.abspath(settings.data_dir)} "
                          "(create one with `warden init`, or pass --data-dir)")


@contextmanager
def admin_session(args: argparse.Namespace) -> Iterator[Admin]:  # type: ignore[name-defined]  # noqa: F821
    from warden.core.clock import SystemClock
    from warden.services.admin import Admin
    from warden.services.audit import open_audit_sink
    from warden.services.kek import load_kek
    from warden.services.key_backends import open_key_backends
    from warden.storage.engine import open_store

    settings = settings_from_args(args)
    url = settings.database_url.reveal() if settings.database_url else None
    require_data_dir(settings)
    material = load_kek(settings.keys.encryption_key.reveal() if settings.keys.encryption_key else None,
                        settings.data_dir)
    store = open_store(url, settings.data_dir)
    sink = settings.audit.sink
    if sink in ("stdout", "stderr"):
        sink = os.path.join(settings.data_dir, "audit.log")
    audit = open_audit_sink(sink, chain=settings.audit.chain)
    try:
        store.migrate()
        yield Admin(store, material, SystemClock(), audit, actor=f"cli:{_user()}",
                    key_backends=open_key_backends(settings.keys, material))
    finally:
        audit.close()
        store.close()


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())
