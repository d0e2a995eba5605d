"""APIs that belong to one tenant (tenant-scoped administration); NULL is a shared API.

Created 2026-12-02.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    with op.batch_alter_table("apis") as batch:
        batch.add_column(sa.Column("tenant", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apis") as batch:
        batch.drop_column("tenant")
