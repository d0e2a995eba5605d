"""Per-API sender-constraint requirements: DPoP proofs and certificate-bound tokens.

Created 2026-11-26.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("apis") as batch:
        batch.add_column(sa.Column("dpop_required", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("cert_bound", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("apis") as batch:
        batch.drop_column("cert_bound")
        batch.drop_column("dpop_required")
