"""Dynamic client registration (RFC 7591 / 7592): initial access tokens and client registrations.

Created 2026-12-02.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    key = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    op.create_table(
        "registration_tokens",
        sa.Column("token_id", key, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("grants", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("approval", sa.Boolean(), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("token_id", name="pk_registration_tokens"),
    )
    op.create_index("ix_registration_tokens_hash", "registration_tokens", ["hash"], unique=True)
    op.create_table(
        "client_registrations",
        sa.Column("client_id", key, nullable=False),
        sa.Column("token_id", key, nullable=False),
        sa.Column("access_token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("grants", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.client_id"], ondelete="CASCADE",
                                name="fk_client_registrations_client_id_clients"),
        sa.PrimaryKeyConstraint("client_id", name="pk_client_registrations"),
    )


def downgrade() -> None:
    op.drop_table("client_registrations")
    op.drop_index("ix_registration_tokens_hash", "registration_tokens")
    op.drop_table("registration_tokens")
