"""Revocation rules: by token (`jti`, kept until the token's `exp`) and by client (a not-before time)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RevokedToken", "StatusBlock", "is_revoked_by_client"]


@dataclass(frozen=True, slots=True)
class RevokedToken:
    jti: str
    client_id: str
    exp: float
    status_list: int | None = None  # where the token's status lives (Token Status List), if it has one
    status_idx: int | None = None


@dataclass(frozen=True, slots=True)
class StatusBlock:
    """Indexes `start` .. `start + size - 1` of status list `list_id`, reserved for one client's tokens.

    A block serves tokens issued until `reserved_at` plus the use window, so every token in it has
    expired by `reusable_at`, fixed when the block is reserved: only then may its indexes go to
    another token. Revoking the client marks the whole block, which is why blocks are per client.
    """

    list_id: int
    start: int
    size: int
    client_id: str
    reserved_at: float
    reusable_at: float


def is_revoked_by_client(iat: float, revoked_before: float | None) -> bool:
    """`iat` has one-second resolution, so a token from the revoking second counts as revoked."""
    return revoked_before is not None and iat <= revoked_before
