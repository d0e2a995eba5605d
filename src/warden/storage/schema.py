"""The SQL schema as SQLAlchemy Core tables, shared by SQLite and PostgreSQL.

This is what the code queries; `migrations/versions/` holds the frozen history
that builds it, and a storage test checks that the two agree. Representation
choices, made once so both databases round-trip values exactly:

- scope tuples are one space-joined TEXT (RFC 6749 §3.3 scope tokens never
  contain whitespace), kept in order;
- times are FLOAT unix seconds (double precision on both databases);
- text keys compare bytewise ("C" collation on PostgreSQL, SQLite's default
  BINARY) so `ORDER BY` agrees with Python's `sorted` in the memory store;
- constraints carry conventional names so later migrations can address them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.types import TypeEngine

__all__ = [
    "NAMING_CONVENTION",
    "apis",
    "audit_cursors",
    "change_log",
    "client_registrations",
    "client_secrets",
    "clients",
    "federated_identities",
    "grants",
    "metadata",
    "registration_tokens",
    "revoked_tokens",
    "signing_keys",
    "status_blocks",
    "status_lists",
    "used_assertions",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s_%(column_1_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _key() -> TypeEngine[str]:
    """Text that sorts and compares bytewise on every backend."""
    return Text().with_variant(Text(collation="C"), "postgresql")


metadata = MetaData(naming_convention=NAMING_CONVENTION)

apis = Table(
    "apis", metadata,
    Column("identifier", _key(), primary_key=True),
    Column("scopes", Text, nullable=False),
    Column("token_ttl", Integer, nullable=False),
    Column("alg", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("dpop_required", Boolean, nullable=False, server_default=false()),
    Column("cert_bound", Boolean, nullable=False, server_default=false()),
    Column("tenant", Text, nullable=True),  # None: a shared API
)

clients = Table(
    "clients", metadata,
    Column("client_id", _key(), primary_key=True),
    Column("name", Text, nullable=False),
    Column("auth_method", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("tenant", Text, nullable=True),
    Column("rate_limit", Float, nullable=True),
    Column("revoked_before", Float, nullable=True),
    Column("metadata", Text, nullable=False, server_default="{}"),  # JSON, see core.client_metadata
    Column("created_at", Float, nullable=False),
)

# One grant per (client, API), and one per position so "position 0 is the default" is unambiguous.
# Deleting a client takes its grants; an API cannot be deleted while granted.
grants = Table(
    "grants", metadata,
    Column("client_id", _key(), ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True),
    Column("api", _key(), ForeignKey("apis.identifier"), primary_key=True, index=True),
    Column("scopes", Text, nullable=False),
    Column("position", Integer, nullable=False),
    UniqueConstraint("client_id", "position"),
)

client_secrets = Table(
    "client_secrets", metadata,
    Column("secret_id", _key(), primary_key=True),
    Column("client_id", _key(), ForeignKey("clients.client_id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("hash", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
    Column("hint", Text, nullable=False),
)

# The (issuer, subject) of each federated identity in a client's metadata (core.client_metadata), kept
# by the store with the client row, so a workload-identity login finds its client with one indexed
# lookup even when the registry holds only the hot part of the clients.
federated_identities = Table(
    "federated_identities", metadata,
    Column("issuer", _key(), primary_key=True),
    Column("subject", _key(), primary_key=True),
    Column("client_id", _key(), ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True,
           index=True),
)

signing_keys = Table(
    "signing_keys", metadata,
    Column("kid", _key(), primary_key=True),
    Column("alg", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("public_jwk", Text, nullable=False),  # JSON object
    Column("encrypted_private_key", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("activated_at", Float, nullable=True),
    Column("retired_at", Float, nullable=True),
)

# No foreign key to clients: a revocation must outlive the client it names until `exp`.
revoked_tokens = Table(
    "revoked_tokens", metadata,
    Column("jti", _key(), primary_key=True),
    Column("client_id", Text, nullable=False),
    Column("exp", Float, nullable=False, index=True),
    Column("status_list", Integer, nullable=True),  # the token's Token Status List entry, if it has one
    Column("status_idx", Integer, nullable=True),
)

# Token Status Lists: each list hands out its indexes in blocks from `next_start`; once every
# block of a full list is past its `reusable_at`, the list starts over (see core.revocation).
status_lists = Table(
    "status_lists", metadata,
    Column("list_id", Integer, primary_key=True, autoincrement=False),
    Column("next_start", Integer, nullable=False),
    Column("reusable_at", Float, nullable=False),
)

# No foreign key to clients: a deleted client's tokens must stay marked until they expire.
status_blocks = Table(
    "status_blocks", metadata,
    Column("list_id", Integer, primary_key=True, autoincrement=False),
    Column("start", Integer, primary_key=True, autoincrement=False),
    Column("size", Integer, nullable=False),
    Column("client_id", _key(), nullable=False, index=True),
    Column("reserved_at", Float, nullable=False),
    Column("reusable_at", Float, nullable=False),
)

# AUTOINCREMENT on SQLite so a sequence number is never reused, even after pruning.
change_log = Table(
    "change_log", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("at", Float, nullable=False, index=True),
    sqlite_autoincrement=True,
)

# Client assertions already accepted, kept until they expire (RFC 7523 §3 item 7).
used_assertions = Table(
    "used_assertions", metadata,
    Column("key", _key(), primary_key=True),
    Column("exp", Float, nullable=False, index=True),
)

audit_cursors = Table(
    "audit_cursors", metadata,
    Column("name", _key(), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Dynamic registration (RFC 7591): initial access tokens, stored as keyed hashes (looked up by hash),
# with the policy (`grants` JSON: [[api, [scopes]], ...]) that caps what a registered client gets.
registration_tokens = Table(
    "registration_tokens", metadata,
    Column("token_id", _key(), primary_key=True),
    Column("hash", LargeBinary, nullable=False, index=True, unique=True),
    Column("grants", Text, nullable=False),
    Column("tenant", Text, nullable=True),
    Column("approval", Boolean, nullable=False),
    Column("max_uses", Integer, nullable=True),
    Column("uses", Integer, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", Text, nullable=False),
)

# A registered client's registration access token (RFC 7592, hashed) and the policy it was registered
# under; it goes with the client. No foreign key to the initial access token: the policy is copied.
client_registrations = Table(
    "client_registrations", metadata,
    Column("client_id", _key(), ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True),
    Column("token_id", _key(), nullable=False),
    Column("access_token_hash", LargeBinary, nullable=False),
    Column("grants", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
