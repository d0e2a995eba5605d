"""Alembic environment: migrate the connection handed over by `upgrade_to_head`.

The caller owns the transaction (and the lock around it), so Alembic sees an
external transaction and neither begins nor commits one itself. Logging is left
to the application; there is no alembic.ini and no `fileConfig`.
"""

from __future__ import annotations

from alembic import context

from warden.storage.schema import metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("Warden migrations run through warden.storage.migrations.upgrade_to_head")
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("Warden migrations do not support offline (--sql) mode")
run_migrations_online()
