"""Initial schema: APIs, clients, grants, secrets, signing keys, revocations, change log, audit cursors.

Written out in full rather than built from `warden.storage.schema`, because a
migration must keep creating the schema of its own revision after schema.py moves on.

Revision ID: 0001
Revises:
Create Date: 2024-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _key() -> sa.types.TypeEngine[str]:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "apis",
        sa.Column("identifier", _key(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("token_ttl", sa.Integer(), nullable=False),
        sa.Column("alg", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("identifier", name="pk_apis"),
    )
    op.create_table(
        "clients",
        sa.Column("client_id", _key(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("auth_method", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("rate_limit", sa.Float(), nullable=True),
        sa.Column("revoked_before", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_clients"),
    )
    op.create_table(
        "grants",
        sa.Column("client_id", _key(), nullable=False),
        sa.Column("api", _key(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "api", name="pk_grants"),
        sa.ForeignKeyConstraint(["client_id"], ["clients.client_id"], ondelete="CASCADE",
                                name="fk_grants_client_id_clients"),
        sa.ForeignKeyConstraint(["api"], ["apis.identifier"], name="fk_grants_api_apis"),
        sa.UniqueConstraint("client_id", "position", name="uq_grants_client_id_position"),
    )
    op.create_index("ix_grants_api", "grants", ["api"])
    op.create_table(
        "client_secrets",
        sa.Column("secret_id", _key(), nullable=False),
        sa.Column("client_id", _key(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.Column("hint", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("secret_id", name="pk_client_secrets"),
        sa.ForeignKeyConstraint(["client_id"], ["clients.client_id"], ondelete="CASCADE",
                                name="fk_client_secrets_client_id_clients"),
    )
    op.create_index("ix_client_secrets_client_id", "client_secrets", ["client_id"])
    op.create_table(
        "signing_keys",
        sa.Column("kid", _key(), nullable=False),
        sa.Column("alg", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=False),
        sa.Column("encrypted_private_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("activated_at", sa.Float(), nullable=True),
        sa.Column("retired_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
    )
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", _key(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("exp", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_revoked_tokens"),
    )
    op.create_index("ix_revoked_tokens_exp", "revoked_tokens", ["exp"])
    op.create_table(
        "change_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_change_log"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_change_log_at", "change_log", ["at"])
    op.create_table(
        "audit_cursors",
        sa.Column("name", _key(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_audit_cursors"),
    )


def downgrade() -> None:
    for table in ("audit_cursors", "change_log", "revoked_tokens", "signing_keys",
                  "client_secrets", "grants", "clients", "apis"):
        op.drop_table(table)
