"""The storage interface every backend implements.

Each mutating method is atomic and appends to the change log in the same
transaction; server processes poll `changes_since` to invalidate their cached
registry within a second of any change, whichever process or node made it.
`transaction()` groups several calls into one all-or-nothing unit (`warden apply`).
Backends raise `NotFound`, `Conflict` and `StorageUnavailable` from `warden.errors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from warden.core.api import Api
from warden.core.client import Client, Grant
from warden.core.keys import KeyState, SigningKey
from warden.core.registration import ClientRegistration, RegistrationToken
from warden.core.revocation import RevokedToken, StatusBlock
from warden.core.secrets import ClientSecret

__all__ = ["Change", "ChangeKind", "ClientRecord", "Store"]


class ChangeKind(str, Enum):
    API = "api"
    CLIENT = "client"  # the client row, its grants or its secrets
    KEY = "key"
    REVOCATION = "revocation"


@dataclass(frozen=True)
class Change:
    seq: int
    kind: ChangeKind
    key: str
    at: float


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A client with its grants (by position) and secrets (by creation): what the token path needs."""

    client: Client
    grants: tuple[Grant, ...]
    secrets: tuple[ClientSecret, ...]


class Store(Protocol):
    # lifecycle
    def migrate(self) -> None:
        """Create or upgrade the schema to the current version (idempotent)."""

    def ping(self) -> None:
        """Raise StorageUnavailable unless the store answers."""

    def close(self) -> None: ...

    def transaction(self) -> AbstractContextManager[None]:
        """One transaction around every call the current thread makes inside the `with` block:
        committed when the block ends, rolled back entirely (change log included) if it raises.
        Reads inside it see its own writes; a `transaction()` inside another joins it. A call that
        fails inside it fails the whole transaction. Other threads and processes see none of it
        until it commits (the memory store, for tests, guarantees the all-or-nothing part only)."""

    # APIs
    def save_api(self, api: Api) -> None:
        """Insert or update by identifier."""

    def load_api(self, identifier: str) -> Api | None: ...

    def load_apis(self) -> list[Api]: ...

    def delete_api(self, identifier: str) -> None:
        """NotFound if absent; Conflict while a grant still names it."""

    # clients, grants and secrets
    def create_client(self, client: Client, grants: Sequence[Grant], secrets: Sequence[ClientSecret]) -> None:
        """Conflict if the client id exists; NotFound if a grant names an unknown API."""

    def update_client(self, client: Client) -> None:
        """NotFound if absent."""

    def delete_client(self, client_id: str) -> None:
        """Remove the client with its grants and secrets; NotFound if absent."""

    def set_grants(self, client_id: str, grants: Sequence[Grant]) -> None:
        """Replace the client's grants."""

    def load_client(self, client_id: str) -> Client | None: ...

    def load_clients(self) -> list[Client]: ...

    def count_clients(self, limit: int | None = None) -> int:
        """How many clients there are; at most `limit`, so a large store is not counted in full."""

    def load_client_records(self, client_ids: Sequence[str]) -> list[ClientRecord]:
        """The named clients that exist, each with its grants and secrets, in one indexed query
        (the registry's miss path); ids that name no client are left out."""

    def create_clients(self, records: Sequence[ClientRecord]) -> None:
        """Bulk `create_client` in one transaction (seeding and imports): all or nothing, one
        change-log row per client; Conflict if an id exists, NotFound if a grant names an unknown API."""

    def load_federated_client_ids(self, issuer: str, subject: str) -> list[str]:
        """Ids of the clients with a federated identity (`issuer`, `subject`) in their metadata, sorted;
        an indexed lookup, so a registry holding only part of the clients can still find them."""

    def load_grants(self, client_id: str | None = None) -> list[Grant]:
        """Grants ordered by client and position."""

    def add_secret(self, secret: ClientSecret, *, expire_others_at: float | None = None) -> None:
        """Add a secret; when `expire_others_at` is set, every other unexpired secret of the
        client expires at that time or earlier (rotation with a grace period)."""

    def revoke_secret(self, client_id: str, secret_id: str, at: float) -> None:
        """NotFound if the client has no such secret."""

    def load_secrets(self, client_id: str | None = None) -> list[ClientSecret]: ...

    def record_secret_use(self, uses: dict[str, float]) -> None:
        """Batch update of last-used times; not a change-log event."""

    # dynamic registration (RFC 7591 initial access tokens, RFC 7592 registrations); not change-log events
    def save_registration_token(self, token: RegistrationToken) -> None:
        """Insert; Conflict if the id or the hash exists."""

    def load_registration_token(self, token_hash: bytes) -> RegistrationToken | None:
        """The token whose keyed hash is `token_hash`, whatever its state."""

    def load_registration_tokens(self) -> list[RegistrationToken]:
        """Every token, oldest first."""

    def revoke_registration_token(self, token_id: str, at: float) -> None:
        """NotFound if absent; the first revocation time stands."""

    def register_client(self, token_id: str, now: float, client: Client, grants: Sequence[Grant],
                        secrets: Sequence[ClientSecret], registration: ClientRegistration) -> bool:
        """Spend one use of initial access token `token_id` and create the client (as `create_client`)
        with its registration, in one transaction; False, creating nothing, when the token is revoked,
        expired at `now` or used up. Atomic across processes and nodes: racing registrations never
        spend more than `max_uses`."""

    def load_registration(self, client_id: str) -> ClientRegistration | None:
        """A client's registration; `delete_client` removes it with the client."""

    # signing keys
    def add_key(self, key: SigningKey) -> None: ...

    def set_key_states(self, transitions: Iterable[tuple[str, KeyState, float]],
                       *, expect: dict[str, KeyState] | None = None) -> bool:
        """Apply (kid, new state, at) atomically. With `expect`, apply only if every named key
        is still in the expected state (so two processes cannot rotate twice); return applied."""

    def delete_keys(self, kids: Iterable[str]) -> None: ...

    def load_keys(self) -> list[SigningKey]: ...

    # revocation
    def revoke_token(self, revoked: RevokedToken) -> None:
        """Idempotent."""

    def load_revoked_tokens(self, now: float, jti: str | None = None) -> list[RevokedToken]:
        """Revocations whose token has not yet expired (optionally one jti)."""

    def purge_revocations(self, now: float) -> int: ...

    # token status lists (see core.revocation.StatusBlock)
    def reserve_status_block(self, client_id: str, size: int, now: float, reusable_at: float,
                             list_size: int) -> StatusBlock:
        """Reserve `size` consecutive indexes of one status list for `client_id`'s tokens. Atomic across
        processes and nodes: no index is ever in two blocks. Indexes come from the lowest list with room,
        else from a new list; list ids are never reused."""

    def reserve_status_blocks(self, wants: Sequence[tuple[str, int]], now: float, reusable_at: float,
                              list_size: int) -> list[StatusBlock]:
        """`reserve_status_block` for each (client_id, size) of `wants`, in order, in one transaction:
        one store write for many clients. All or none: on an error no block is reserved."""

    def load_status_marks(self, list_id: int, now: float) -> list[tuple[int, int]] | None:
        """The (start, count) ranges of list `list_id` whose tokens are revoked: live blocks of clients
        revoked since the block was reserved (or deleted), and single revoked tokens. None: no such list,
        or one whose every token has expired."""

    def load_status_lists(self, now: float) -> list[int]:
        """Ids of the lists that may still hold live tokens."""

    def purge_status_blocks(self, now: float) -> int:
        """Forget blocks whose tokens have all expired."""

    # single-use client assertions
    def use_assertion(self, key: str, exp: float) -> bool:
        """Record `key` as used until `exp`; False if it was already recorded (a replay). Atomic across
        processes and nodes sharing the store, so of racing copies exactly one gets True."""

    def purge_assertions(self, now: float) -> int: ...

    # change log
    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]: ...

    def latest_change(self) -> int: ...

    def prune_changes(self, before: float) -> int: ...

    # audit cursors: how far each named change-log consumer has read
    def load_cursor(self, name: str) -> int:
        """The sequence number `name` last saved, or 0."""

    def save_cursor(self, name: str, seq: int) -> None:
        """Record that `name` has read up to `seq`; not a change-log event."""
