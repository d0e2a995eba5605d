"""Revocation rules: by token (`jti`, kept until the token's `exp`) and by client (a not-before time)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RevokedToken", "is_revoked_by_client"]


@dataclass(frozen=True, slots=True)
class RevokedToken:
    jti: str
    client_id: str
    exp: float


def is_revoked_by_client(iat: float, revoked_before: float | None) -> bool:
    """`iat` has one-second resolution, so a token from the revoking second counts as revoked."""
    return revoked_before is not None and iat <= revoked_before
