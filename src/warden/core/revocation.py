"""Revocation rules: by token (`jti`, kept until the token's `exp`) and by client (a not-before time)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RevokedToken", "StatusBlock", "StatusEntry", "is_revoked_by_client", "status_entry_of_jti"]


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


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """A token's place in a Token Status List: list `list_id` (served at `uri`), index `idx`."""

    list_id: int
    idx: int
    uri: str

    def jti_suffix(self) -> str:
        """Warden writes the entry into the jti (`<random>.<list>.<idx>`), so that revoking by jti alone
        can mark the token's entry; list ids are never reused, so a late revocation hits no other token."""
        return f".{self.list_id}.{self.idx}"


def status_entry_of_jti(jti: str) -> tuple[int, int] | None:
    """(list id, index) from a jti Warden issued with a status entry; None for any other jti."""
    parts = jti.split(".")
    if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()) or len(parts[1]) > 12 or len(parts[2]) > 12:
        return None
    return int(parts[1]), int(parts[2])


def is_revoked_by_client(iat: float, revoked_before: float | None) -> bool:
    """`iat` has one-second resolution, so a token from the revoking second counts as revoked."""
    return revoked_before is not None and iat <= revoked_before
