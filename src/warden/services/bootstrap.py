"""Make a store ready to serve: schema migrations, the key-encryption key, signing keys.

Run by `warden serve` before it binds its port and by `warden init` (the migration Job
of the Kubernetes manifests). Idempotent: migrations run under an advisory lock on
PostgreSQL, and keys are only created when none is active or published.
"""

from __future__ import annotations

from dataclasses import dataclass

from warden.settings import Settings

__all__ = ["StoreReport", "prepare_store"]


@dataclass(frozen=True)
class StoreReport:
    """What a prepared store holds: the signing keys by state (for `warden init`'s output)."""

    keys: dict[str, int]


def prepare_store(settings: Settings) -> StoreReport:
    """Migrate the store and make sure signing keys exist and decrypt under the configured KEK.

    Raises ConfigError (bad settings, a KEK that does not decrypt the stored keys) or
    StorageError (the store cannot be reached or migrated), each with a one-line message.
    """
    from warden.core.clock import SystemClock
    from warden.services.audit import AuditSink
    from warden.services.kek import load_kek
    from warden.services.key_backends import open_key_backends
    from warden.services.keyring import Keyring, check_backend_keys, signers_from_keys
    from warden.storage.engine import open_store

    material = load_kek(settings.keys.encryption_key.reveal() if settings.keys.encryption_key else None,
                        settings.data_dir)
    backends = open_key_backends(settings.keys, material)
    store = open_store(settings.database_url.reveal() if settings.database_url else None, settings.data_dir)
    try:
        store.migrate()
        Keyring(store, material, SystemClock(), AuditSink(), backends).ensure_keys()
        keys = store.load_keys()
        signers_from_keys(keys, backends)  # proves the KEK decrypts the stored keys, and the token opens
        check_backend_keys(keys, backends)  # and that each backend holds the very key that is published
        counts: dict[str, int] = {}
        for key in keys:
            counts[key.state.value] = counts.get(key.state.value, 0) + 1
        return StoreReport(keys=counts)
    finally:
        store.close()
