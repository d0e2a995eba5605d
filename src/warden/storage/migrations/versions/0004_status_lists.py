"""Token Status Lists: index blocks per client, and where a revoked token's status lives.

Created 2026-12-02.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "status_lists",
        sa.Column("list_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("next_start", sa.Integer(), nullable=False),
        sa.Column("reusable_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("list_id", name="pk_status_lists"),
    )
    key = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    op.create_table(
        "status_blocks",
        sa.Column("list_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("start", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("client_id", key, nullable=False),
        sa.Column("reserved_at", sa.Float(), nullable=False),
        sa.Column("reusable_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("list_id", "start", name="pk_status_blocks"),
    )
    op.create_index("ix_status_blocks_client_id", "status_blocks", ["client_id"])
    with op.batch_alter_table("revoked_tokens") as batch:
        batch.add_column(sa.Column("status_list", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("status_idx", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("revoked_tokens") as batch:
        batch.drop_column("status_idx")
        batch.drop_column("status_list")
    op.drop_index("ix_status_blocks_client_id", "status_blocks")
    op.drop_table("status_blocks")
    op.drop_table("status_lists")
