"""Federated identities as rows, so a partial registry looks a workload identity up by (issuer, subject).

Created 2026-12-02.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    key = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    table = op.create_table(
        "federated_identities",
        sa.Column("issuer", key, nullable=False),
        sa.Column("subject", key, nullable=False),
        sa.Column("client_id", key, nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.client_id"], ondelete="CASCADE",
                                name="fk_federated_identities_client_id_clients"),
        sa.PrimaryKeyConstraint("issuer", "subject", "client_id", name="pk_federated_identities"),
    )
    op.create_index("ix_federated_identities_client_id", "federated_identities", ["client_id"])
    # Backfill from the metadata JSON of the clients that have federated identities.
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT client_id, metadata FROM clients WHERE metadata LIKE '%federated%'"))
    identities = set()
    for client_id, raw in rows:
        for item in (json.loads(raw or "{}").get("federated") or []):
            identities.add((item["issuer"], item["subject"], client_id))
    if identities:
        op.bulk_insert(table, [{"issuer": i, "subject": s, "client_id": c} for i, s, c in sorted(identities)])


def downgrade() -> None:
    op.drop_index("ix_federated_identities_client_id", "federated_identities")
    op.drop_table("federated_identities")
