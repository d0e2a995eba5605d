"""Client authentication metadata (JWKS, jwks_uri, federated identities, DPoP binding) and the
single-use record of client assertions.

Created 2026-11-26.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("metadata", sa.Text(), nullable=False, server_default="{}"))
    op.create_table(
        "used_assertions",
        sa.Column("key", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False),
        sa.Column("exp", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_used_assertions"),
    )
    op.create_index("ix_used_assertions_exp", "used_assertions", ["exp"])


def downgrade() -> None:
    op.drop_index("ix_used_assertions_exp", table_name="used_assertions")
    op.drop_table("used_assertions")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("metadata")
