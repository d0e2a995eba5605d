"""Builds what admin commands need (settings, store, key material, audit) from global options.

CLI audit events go to the configured audit file, or to `<data_dir>/audit.log` when the
server's sink is stdout, so command output stays clean and admin changes are still recorded.
`operations(args)` is what the management commands use: the admin API of `--server` /
WARDEN_SERVER when one is given (`cli/remote.py`; no settings, data directory or store), else
`services.admin` on the local store.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from warden.errors import ConfigError
from warden.settings import Settings, load_settings

if TYPE_CHECKING:
    from warden.services.admin import Admin
    from warden.services.operations import AdminOperations

__all__ = ["admin_session", "is_remote", "operations", "require_data_dir", "settings_from_args"]


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
def admin_session(args: argparse.Namespace) -> Iterator[Admin]:
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
        yield Admin(store, material, SystemClock(), audit, actor=f"cli:{_user()}", dev_mode=settings.dev_mode,
                    key_backends=open_key_backends(settings.keys, material))
    finally:
        audit.close()
        store.close()


def is_remote(args: argparse.Namespace) -> bool:
    from warden.cli.remote import remote_server

    return remote_server(getattr(args, "server", None)) is not None


@contextmanager
def operations(args: argparse.Namespace) -> Iterator[AdminOperations]:
    """The management operations, remote (`--server`) or local."""
    from warden.cli.remote import RemoteOperations, remote_server

    server = remote_server(getattr(args, "server", None))
    if server is not None:
        for flag in ("data_dir", "database_url"):
            if getattr(args, flag, None):
                raise ConfigError(f"--{flag.replace('_', '-')} is for local mode, and this command is going to "
                                  f"{server} (--server or WARDEN_SERVER)")
        with RemoteOperations(server, client_secret_file=getattr(args, "client_secret_file", None),
                              private_key_file=getattr(args, "private_key_file", None),
                              private_key_alg=getattr(args, "private_key_alg", None),
                              key_id=getattr(args, "key_id", None)) as remote:
            yield remote
        return
    for flag in ("client_secret_file", "private_key_file", "private_key_alg", "key_id"):
        if getattr(args, flag, None):
            raise ConfigError(f"--{flag.replace('_', '-')} is for remote mode (--server or WARDEN_SERVER)")
    from warden.services.operations import LocalOperations

    settings = settings_from_args(args)
    with admin_session(args) as admin:
        yield LocalOperations(admin, issuer=settings.issuer_url,
                              login_url_lifetime=settings.console.login_url_lifetime)


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())
