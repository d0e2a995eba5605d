"""The storage contract (`warden.storage.contract.Store`), run against memory, SQLite and PostgreSQL.

Every test that takes `store` runs once per backend; tests that take `open_sql_store`
cover what only a shared database can show (several processes, migrations, schema);
the last section covers opening SQL stores from URLs.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from warden.core.api import Api
from warden.core.client import AuthMethod, Client, Grant
from warden.core.keys import KeyState, SigningKey
from warden.core.registration import ClientRegistration, RegistrationToken
from warden.core.revocation import RevokedToken
from warden.core.secrets import ClientSecret
from warden.errors import ConfigError, Conflict, NotFound, StorageError, StorageUnavailable
from warden.storage.contract import ChangeKind, Store
from warden.storage.engine import build_engine, open_store, parse_database_url, redact_url
from warden.storage.schema import metadata

T0 = 1_700_000_000.25
API_A = "https://a.example/api"
API_B = "https://b.example/api"


def api(identifier: str = API_A, scopes: tuple[str, ...] = ("read", "write"), **kw: Any) -> Api:
    return Api(identifier, scopes, **kw)


def client(client_id: str = "svc-1", name: str = "Service one") -> Client:
    return Client(client_id, name, created_at=T0)


def secret(secret_id: str, client_id: str = "svc-1", **kw: Any) -> ClientSecret:
    return ClientSecret(secret_id, client_id, hash=b"\x00hash\xff" + secret_id.encode(),
                        **{"created_at": T0, **kw})


def key(kid: str, state: KeyState = KeyState.NEXT, created_at: float = T0, **kw: Any) -> SigningKey:
    jwk = {"kty": "EC", "crv": "P-256", "x": f"x-{kid}", "y": f"y-{kid}", "kid": kid}
    return SigningKey(kid, "ES256", state, jwk, b"\x00\x01sealed\xfe" + kid.encode(), created_at, **kw)


def logged(store: Store, since: int = 0) -> list[tuple[ChangeKind, str]]:
    return [(c.kind, c.key) for c in store.changes_since(since)]


@pytest.fixture
def granted(store: Store) -> Store:
    """A store holding APIs A and B and client svc-1 granted both, with one secret."""
    store.save_api(api(API_A))
    store.save_api(api(API_B, ("admin",)))
    store.create_client(client(), [Grant("svc-1", API_A, ("read",), 0), Grant("svc-1", API_B, ("admin",), 1)],
                        [secret("sec-1")])
    return store


# lifecycle ---------------------------------------------------------------------------
def test_ping_answers_on_a_migrated_store(store: Store) -> None:
    store.ping()


def test_migrate_again_is_a_noop_that_keeps_data(store: Store) -> None:
    store.save_api(api())
    store.migrate()
    store.migrate()
    assert store.load_apis() == [api()]


# APIs --------------------------------------------------------------------------------
def test_save_api_round_trips_every_field(store: Store) -> None:
    saved = Api(API_A, ("write", "read", "admin:all"), token_ttl=300, alg="EdDSA", name="Orders",
                created_at=T0, tenant="acme")
    store.save_api(saved)
    assert store.load_api(API_A) == saved
    store.save_api(dataclasses.replace(saved, tenant=None))  # back to shared, in place
    assert store.load_api(API_A) == dataclasses.replace(saved, tenant=None)
    assert store.load_api("https://unknown.example") is None


def test_save_api_updates_in_place_but_keeps_created_at(store: Store) -> None:
    store.save_api(api(created_at=T0))
    store.save_api(api(scopes=("read",), token_ttl=120, name="renamed", created_at=T0 + 99))
    assert store.load_apis() == [api(scopes=("read",), token_ttl=120, name="renamed", created_at=T0)]
    assert logged(store) == [(ChangeKind.API, API_A)] * 2


def test_load_apis_sorts_identifiers_bytewise(store: Store) -> None:
    identifiers = ["urn:b", "urn:B", "urn:_", "urn:a", "urn:A"]
    for identifier in identifiers:
        store.save_api(api(identifier))
    assert [a.identifier for a in store.load_apis()] == sorted(identifiers)


def test_delete_api_removes_it_and_logs(store: Store) -> None:
    store.save_api(api())
    store.delete_api(API_A)
    assert store.load_api(API_A) is None
    assert logged(store) == [(ChangeKind.API, API_A)] * 2


def test_delete_api_that_does_not_exist_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.delete_api(API_A)


def test_delete_api_still_granted_raises_conflict_and_keeps_it(granted: Store) -> None:
    seq = granted.latest_change()
    with pytest.raises(Conflict):
        granted.delete_api(API_B)
    assert granted.load_api(API_B) is not None
    assert granted.latest_change() == seq


# clients and grants ------------------------------------------------------------------
def test_create_client_round_trips_client_grants_and_secrets(store: Store) -> None:
    store.save_api(api(API_A, ("read", "write", "delete")))
    full = Client("svc-full", "Full", AuthMethod.PRIVATE_KEY_JWT, enabled=False, tenant="acme",
                  rate_limit=2.5, revoked_before=T0 + 0.5, created_at=T0)
    bare = Client("svc-bare", "", created_at=T0)
    grant = Grant("svc-full", API_A, ("write", "delete", "read"), 0)
    full_secret = ClientSecret("sec-full", "svc-full", bytes(range(256)), T0, expires_at=T0 + 1,
                               revoked_at=T0 + 2, last_used_at=T0 + 3, hint="a1B2")
    store.create_client(full, [grant], [full_secret])
    store.create_client(bare, [], [])
    assert store.load_client("svc-full") == full
    assert store.load_client("svc-bare") == bare
    assert store.load_client("nobody") is None
    assert store.load_grants("svc-full") == [grant]
    assert store.load_grants("svc-bare") == []
    assert store.load_secrets("svc-full") == [full_secret]
    assert logged(store)[-2:] == [(ChangeKind.CLIENT, "svc-full"), (ChangeKind.CLIENT, "svc-bare")]


def test_create_client_with_existing_id_raises_conflict_and_changes_nothing(granted: Store) -> None:
    seq = granted.latest_change()
    with pytest.raises(Conflict):
        granted.create_client(client(name="impostor"), [], [secret("sec-2")])
    assert granted.load_client("svc-1") == client()
    assert [s.secret_id for s in granted.load_secrets()] == ["sec-1"]
    assert granted.latest_change() == seq


def test_create_client_granting_unknown_api_raises_not_found_and_writes_nothing(store: Store) -> None:
    store.save_api(api())
    seq = store.latest_change()
    with pytest.raises(NotFound):
        store.create_client(client(), [Grant("svc-1", API_A, ("read",), 0),
                                       Grant("svc-1", "urn:nope", ("x",), 1)], [secret("sec-1")])
    assert store.load_clients() == []
    assert store.load_grants() == []
    assert store.load_secrets() == []
    assert store.latest_change() == seq


def test_update_client_changes_fields_but_keeps_created_at(granted: Store) -> None:
    changed = Client("svc-1", "Renamed", AuthMethod.CLIENT_SECRET_POST, enabled=False, tenant="t2",
                     rate_limit=0.5, revoked_before=T0 + 7, created_at=T0 + 1000)
    granted.update_client(changed)
    assert granted.load_client("svc-1") == Client("svc-1", "Renamed", AuthMethod.CLIENT_SECRET_POST,
                                                  False, "t2", 0.5, T0 + 7, created_at=T0)
    granted.update_client(client())  # back to None values
    assert granted.load_client("svc-1") == client()
    assert logged(granted)[-2:] == [(ChangeKind.CLIENT, "svc-1")] * 2


def test_update_client_that_does_not_exist_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.update_client(client())


def test_delete_client_removes_its_grants_and_secrets(granted: Store) -> None:
    granted.create_client(client("svc-2"), [Grant("svc-2", API_A, ("read",), 0)], [secret("sec-2", "svc-2")])
    granted.delete_client("svc-1")
    assert granted.load_client("svc-1") is None
    assert granted.load_grants("svc-1") == []
    assert granted.load_secrets("svc-1") == []
    assert [g.client_id for g in granted.load_grants()] == ["svc-2"]
    assert [s.secret_id for s in granted.load_secrets()] == ["sec-2"]
    assert logged(granted)[-1] == (ChangeKind.CLIENT, "svc-1")
    granted.delete_api(API_B)  # no grant names it any more


def test_delete_client_that_does_not_exist_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.delete_client("nobody")


def test_set_grants_replaces_the_clients_grants(granted: Store) -> None:
    new = [Grant("svc-1", API_B, ("admin",), 0), Grant("svc-1", API_A, ("write", "read"), 1)]
    granted.set_grants("svc-1", new)
    assert granted.load_grants("svc-1") == new
    granted.set_grants("svc-1", [])
    assert granted.load_grants("svc-1") == []
    assert logged(granted)[-2:] == [(ChangeKind.CLIENT, "svc-1")] * 2


def test_set_grants_rejects_unknown_client_or_api_and_keeps_old_grants(granted: Store) -> None:
    before = granted.load_grants("svc-1")
    with pytest.raises(NotFound):
        granted.set_grants("nobody", [])
    with pytest.raises(NotFound):
        granted.set_grants("svc-1", [Grant("svc-1", "urn:nope", ("x",), 0)])
    assert granted.load_grants("svc-1") == before


def test_load_clients_and_grants_are_ordered_by_client_then_position(store: Store) -> None:
    store.save_api(api(API_A))
    store.save_api(api(API_B))
    for client_id in ["svc-b", "svc-B", "svc-a"]:
        store.create_client(client(client_id), [Grant(client_id, API_A, ("read",), 1),
                                                Grant(client_id, API_B, ("write",), 0)], [])
    assert [c.client_id for c in store.load_clients()] == ["svc-B", "svc-a", "svc-b"]
    assert [(g.client_id, g.position) for g in store.load_grants()] == [
        ("svc-B", 0), ("svc-B", 1), ("svc-a", 0), ("svc-a", 1), ("svc-b", 0), ("svc-b", 1)]


# secrets -----------------------------------------------------------------------------
def test_add_secret_stores_it_and_logs_the_client(granted: Store) -> None:
    added = secret("sec-2", expires_at=T0 + 60, hint="wxyz")
    granted.add_secret(added)
    assert granted.load_secrets("svc-1") == [secret("sec-1"), added]
    assert logged(granted)[-1] == (ChangeKind.CLIENT, "svc-1")


def test_add_secret_for_unknown_client_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.add_secret(secret("sec-1", "nobody"))


def test_add_secret_with_expire_others_at_shortens_only_later_or_unbounded_expiry(granted: Store) -> None:
    cutoff = T0 + 100
    granted.add_secret(secret("sec-later", expires_at=cutoff + 50))
    granted.add_secret(secret("sec-sooner", expires_at=cutoff - 50))
    granted.create_client(client("svc-2"), [], [secret("sec-other", "svc-2")])
    granted.add_secret(secret("sec-new"), expire_others_at=cutoff)
    expiry = {s.secret_id: s.expires_at for s in granted.load_secrets()}
    assert expiry == {"sec-1": cutoff, "sec-later": cutoff, "sec-sooner": cutoff - 50, "sec-new": None,
                      "sec-other": None}


def test_revoke_secret_keeps_the_first_revocation_time(granted: Store) -> None:
    granted.revoke_secret("svc-1", "sec-1", T0 + 5)
    granted.revoke_secret("svc-1", "sec-1", T0 + 9)
    assert granted.load_secrets("svc-1")[0].revoked_at == T0 + 5
    assert logged(granted)[-2:] == [(ChangeKind.CLIENT, "svc-1")] * 2


def test_revoke_secret_of_another_client_raises_not_found(granted: Store) -> None:
    granted.create_client(client("svc-2"), [], [])
    with pytest.raises(NotFound):
        granted.revoke_secret("svc-2", "sec-1", T0)
    with pytest.raises(NotFound):
        granted.revoke_secret("svc-1", "sec-missing", T0)
    assert granted.load_secrets("svc-1")[0].revoked_at is None


def test_load_secrets_filters_by_client_and_orders_by_client_then_creation(granted: Store) -> None:
    granted.create_client(client("svc-0"), [], [secret("sec-z", "svc-0", created_at=T0 + 1)])
    granted.add_secret(secret("sec-0", created_at=T0 + 1))
    granted.add_secret(secret("sec-b", created_at=T0 - 1))
    assert [s.secret_id for s in granted.load_secrets()] == ["sec-z", "sec-b", "sec-1", "sec-0"]
    assert [s.secret_id for s in granted.load_secrets("svc-1")] == ["sec-b", "sec-1", "sec-0"]


def test_record_secret_use_only_moves_forward_and_is_not_logged(granted: Store) -> None:
    granted.add_secret(secret("sec-2", last_used_at=T0 + 50))
    seq = granted.latest_change()
    granted.record_secret_use({"sec-1": T0 + 10, "sec-2": T0 + 20, "sec-unknown": T0})
    granted.record_secret_use({})
    used = {s.secret_id: s.last_used_at for s in granted.load_secrets()}
    assert used == {"sec-1": T0 + 10, "sec-2": T0 + 50}
    assert granted.latest_change() == seq


# signing keys ------------------------------------------------------------------------
def test_add_key_round_trips_jwk_bytes_and_optional_times(store: Store) -> None:
    fresh = key("k-next")
    used = key("k-old", KeyState.RETIRED, activated_at=T0 + 1, retired_at=T0 + 2)
    store.add_key(fresh)
    store.add_key(used)
    assert store.load_keys() == [fresh, used]  # same created_at: ordered by kid
    assert logged(store) == [(ChangeKind.KEY, "k-next"), (ChangeKind.KEY, "k-old")]


def test_add_key_with_existing_kid_raises_conflict(store: Store) -> None:
    store.add_key(key("k1"))
    with pytest.raises(Conflict):
        store.add_key(key("k1", KeyState.ACTIVE))
    assert store.load_keys() == [key("k1")]


def test_load_keys_orders_by_creation_then_kid(store: Store) -> None:
    for kid, created in [("k-c", T0 + 2), ("k-b", T0), ("k-a", T0 + 1), ("k-A", T0)]:
        store.add_key(key(kid, created_at=created))
    assert [k.kid for k in store.load_keys()] == ["k-A", "k-b", "k-a", "k-c"]


def test_set_key_states_applies_transitions_with_their_times(store: Store) -> None:
    store.add_key(key("k-next"))
    store.add_key(key("k-active", KeyState.ACTIVE, activated_at=T0))
    seq = store.latest_change()
    applied = store.set_key_states(
        [("k-next", KeyState.ACTIVE, T0 + 10), ("k-active", KeyState.RETIRED, T0 + 11)],
        expect={"k-next": KeyState.NEXT, "k-active": KeyState.ACTIVE})
    assert applied is True
    states = {k.kid: (k.state, k.activated_at, k.retired_at) for k in store.load_keys()}
    assert states == {"k-next": (KeyState.ACTIVE, T0 + 10, None), "k-active": (KeyState.RETIRED, T0, T0 + 11)}
    assert logged(store, seq) == [(ChangeKind.KEY, "k-next"), (ChangeKind.KEY, "k-active")]


def test_set_key_states_with_unmet_expectation_changes_nothing(store: Store) -> None:
    store.add_key(key("k1", KeyState.ACTIVE))
    seq = store.latest_change()
    assert store.set_key_states([("k1", KeyState.RETIRED, T0)], expect={"k1": KeyState.NEXT}) is False
    assert store.set_key_states([("k1", KeyState.RETIRED, T0)], expect={"k-missing": KeyState.NEXT}) is False
    assert store.load_keys() == [key("k1", KeyState.ACTIVE)]
    assert store.latest_change() == seq


def test_set_key_states_with_unknown_kid_raises_not_found_and_applies_nothing(
        store: Store) -> None:
    store.add_key(key("k1"))
    seq = store.latest_change()
    with pytest.raises(NotFound):
        store.set_key_states([("k1", KeyState.ACTIVE, T0), ("k-missing", KeyState.RETIRED, T0)])
    assert store.load_keys() == [key("k1")]
    assert store.latest_change() == seq


def test_concurrent_compare_and_set_lets_exactly_one_caller_win(store: Store) -> None:
    rounds = 8
    for n in range(rounds):
        store.add_key(key(f"next-{n}"))
        store.add_key(key(f"active-{n}", KeyState.ACTIVE))

    def rotate(n: int, barrier: threading.Barrier) -> bool:
        barrier.wait()
        return store.set_key_states(
            [(f"next-{n}", KeyState.ACTIVE, T0), (f"active-{n}", KeyState.RETIRED, T0)],
            expect={f"next-{n}": KeyState.NEXT, f"active-{n}": KeyState.ACTIVE})

    with ThreadPoolExecutor(max_workers=2) as pool:
        for n in range(rounds):
            barrier = threading.Barrier(2)
            results = [f.result() for f in [pool.submit(rotate, n, barrier) for _ in range(2)]]
            assert sorted(results) == [False, True]
    # each next-N key was logged by add_key and then by exactly one transition
    assert sum(1 for c in store.changes_since(0) if c.key.startswith("next-")) == 2 * rounds


def test_delete_keys_logs_only_keys_that_existed(store: Store) -> None:
    store.add_key(key("k1"))
    store.add_key(key("k2"))
    seq = store.latest_change()
    store.delete_keys(["k1", "k-missing"])
    store.delete_keys([])
    assert [k.kid for k in store.load_keys()] == ["k2"]
    assert logged(store, seq) == [(ChangeKind.KEY, "k1")]


# revocation --------------------------------------------------------------------------
def test_revoke_token_is_idempotent_and_logged_once(store: Store) -> None:
    store.revoke_token(RevokedToken("jti-1", "svc-1", T0 + 60))
    store.revoke_token(RevokedToken("jti-1", "svc-1", T0 + 60))
    assert store.load_revoked_tokens(T0) == [RevokedToken("jti-1", "svc-1", T0 + 60)]
    assert logged(store) == [(ChangeKind.REVOCATION, "jti-1")]


def test_revocations_outlive_their_client(granted: Store) -> None:
    granted.revoke_token(RevokedToken("jti-1", "svc-1", T0 + 60))
    granted.delete_client("svc-1")
    assert granted.load_revoked_tokens(T0, jti="jti-1") == [RevokedToken("jti-1", "svc-1", T0 + 60)]


def test_load_revoked_tokens_skips_expired_and_filters_by_jti(store: Store) -> None:
    for jti, exp in [("jti-past", T0 - 1), ("jti-now", T0), ("jti-1", T0 + 1), ("jti-2", T0 + 2)]:
        store.revoke_token(RevokedToken(jti, "svc-1", exp))
    assert sorted(r.jti for r in store.load_revoked_tokens(T0)) == ["jti-1", "jti-2"]
    assert store.load_revoked_tokens(T0, jti="jti-2") == [RevokedToken("jti-2", "svc-1", T0 + 2)]
    assert store.load_revoked_tokens(T0, jti="jti-past") == []


def test_purge_revocations_deletes_expired_and_counts_them(store: Store) -> None:
    for jti, exp in [("jti-past", T0 - 1), ("jti-now", T0), ("jti-1", T0 + 1)]:
        store.revoke_token(RevokedToken(jti, "svc-1", exp))
    seq = store.latest_change()
    assert store.purge_revocations(T0) == 2
    assert store.purge_revocations(T0) == 0
    assert [r.jti for r in store.load_revoked_tokens(T0 - 10)] == ["jti-1"]
    assert store.latest_change() == seq


# change log --------------------------------------------------------------------------
def test_change_log_numbers_every_change_in_order(granted: Store) -> None:
    assert logged(granted) == [(ChangeKind.API, API_A), (ChangeKind.API, API_B), (ChangeKind.CLIENT, "svc-1")]
    granted.add_key(key("k1"))
    granted.revoke_token(RevokedToken("jti-1", "svc-1", T0 + 60))
    granted.set_grants("svc-1", [])
    granted.delete_api(API_B)
    changes = granted.changes_since(0)
    assert [(c.kind, c.key) for c in changes[3:]] == [
        (ChangeKind.KEY, "k1"), (ChangeKind.REVOCATION, "jti-1"), (ChangeKind.CLIENT, "svc-1"),
        (ChangeKind.API, API_B)]
    seqs = [c.seq for c in changes]
    assert seqs == sorted(set(seqs)) and seqs[0] >= 1
    assert granted.latest_change() == seqs[-1]
    assert all(isinstance(c.at, float) and c.at > T0 for c in changes)


def test_changes_since_starts_after_seq_and_honours_limit(store: Store) -> None:
    assert store.changes_since(0) == []
    assert store.latest_change() == 0
    for n in range(5):
        store.revoke_token(RevokedToken(f"jti-{n}", "svc-1", T0))
    seqs = [c.seq for c in store.changes_since(0)]
    assert [c.seq for c in store.changes_since(seqs[1], limit=2)] == seqs[2:4]
    assert store.changes_since(seqs[-1]) == []


def test_prune_changes_removes_old_rows_but_never_the_newest(store: Store) -> None:
    for n in range(3):
        store.revoke_token(RevokedToken(f"jti-{n}", "svc-1", T0))
    latest = store.latest_change()
    assert store.prune_changes(0.0) == 0
    assert store.prune_changes(float("inf")) == 2
    assert [c.seq for c in store.changes_since(0)] == [latest]
    assert store.latest_change() == latest
    store.revoke_token(RevokedToken("jti-next", "svc-1", T0))
    assert store.latest_change() > latest


# audit cursors -----------------------------------------------------------------------
def test_cursors_start_at_zero_and_keep_the_last_saved_seq(store: Store) -> None:
    assert store.load_cursor("audit") == 0
    store.save_cursor("audit", 7)
    store.save_cursor("audit", 42)
    store.save_cursor("other", 3)
    assert (store.load_cursor("audit"), store.load_cursor("other")) == (42, 3)
    assert store.latest_change() == 0


# dynamic registration ------------------------------------------------------------------
def reg_token(token_id: str = "rt_1", **kw: Any) -> RegistrationToken:
    return RegistrationToken(token_id, b"\x00h\xff" + token_id.encode(), ((API_A, ("read", "write")),), T0,
                             **kw)


def registration(client_id: str = "svc-1", token_id: str = "rt_1") -> ClientRegistration:
    return ClientRegistration(client_id, token_id, b"\x01rat\xfe" + client_id.encode(), ((API_A, ("read",)),), T0)


def test_registration_tokens_round_trip_and_revoke_once(store: Store) -> None:
    store.save_api(api())
    made = reg_token(tenant="acme", approval=True, max_uses=3, expires_at=T0 + 60, created_by="cli:ops")
    store.save_registration_token(made)
    store.save_registration_token(reg_token("rt_2"))
    assert store.load_registration_token(made.hash) == made
    assert store.load_registration_token(b"nope") is None
    assert [t.token_id for t in store.load_registration_tokens()] == ["rt_1", "rt_2"]
    with pytest.raises(Conflict):
        store.save_registration_token(dataclasses.replace(reg_token("rt_3"), hash=made.hash))
    store.revoke_registration_token("rt_1", T0 + 1)
    store.revoke_registration_token("rt_1", T0 + 2)  # the first time stands
    assert store.load_registration_token(made.hash).revoked_at == T0 + 1  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        store.revoke_registration_token("rt_missing", T0)
    assert logged(store) == [(ChangeKind.API, API_A)]  # tokens are no change-log events


def test_register_client_spends_a_use_and_creates_the_client_with_its_registration(store: Store) -> None:
    store.save_api(api())
    store.save_registration_token(reg_token(max_uses=1))
    grants = [Grant("svc-1", API_A, ("read",))]
    assert store.register_client("rt_1", T0, client(), grants, [secret("s1")], registration())
    assert store.load_client("svc-1") == client() and store.load_grants("svc-1") == grants
    assert [s.secret_id for s in store.load_secrets("svc-1")] == ["s1"]
    assert store.load_registration("svc-1") == registration()
    assert store.load_registration_tokens()[0].uses == 1
    assert (ChangeKind.CLIENT, "svc-1") in logged(store)
    # used up: nothing is created
    assert not store.register_client("rt_1", T0, client("svc-2"), [], [], registration("svc-2"))
    assert store.load_client("svc-2") is None and store.load_registration("svc-2") is None
    store.delete_client("svc-1")
    assert store.load_registration("svc-1") is None


@pytest.mark.parametrize("state", [{"expires_at": T0}, {"revoked_at": T0 - 1}, {"max_uses": 0}])
def test_register_client_refuses_an_expired_revoked_or_used_up_token(store: Store, state: dict[str, Any]) -> None:
    store.save_api(api())
    store.save_registration_token(reg_token(**state))
    assert not store.register_client("rt_1", T0, client(), [], [], registration())
    assert not store.register_client("rt_missing", T0, client(), [], [], registration())
    assert store.load_client("svc-1") is None and store.load_registration_tokens()[0].uses == 0


def test_a_failed_registration_spends_no_use(store: Store) -> None:
    store.save_api(api())
    store.create_client(client(), [], [])
    store.save_registration_token(reg_token(max_uses=1))
    with pytest.raises(Conflict):
        store.register_client("rt_1", T0, client(), [], [], registration())
    assert store.load_registration_tokens()[0].uses == 0


def test_concurrent_registrations_never_exceed_max_uses(open_sql_store: Callable[[], Store]) -> None:
    stores = [open_sql_store() for _ in range(4)]  # separate engines and pools, like separate processes
    for s in stores:
        s.migrate()
    stores[0].save_api(api())
    stores[0].save_registration_token(reg_token(max_uses=5))
    barrier = threading.Barrier(16)

    def register(n: int) -> bool:
        barrier.wait()
        return stores[n % 4].register_client("rt_1", T0, client(f"svc-{n}"), [Grant(f"svc-{n}", API_A, ("read",))],
                                             [], registration(f"svc-{n}"))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(register, range(16)))
    assert results.count(True) == 5
    assert stores[1].load_registration_tokens()[0].uses == 5
    assert len(stores[2].load_clients()) == 5


# several processes on one SQL database -------------------------------------------------
def test_stores_sharing_a_database_see_each_others_writes(open_sql_store: Callable[[], Store]) -> None:
    first, second = open_sql_store(), open_sql_store()
    first.migrate()
    first.save_api(api())
    assert second.load_api(API_A) == api()
    assert logged(second) == [(ChangeKind.API, API_A)]
    second.add_key(key("k1"))
    assert first.load_keys() == [key("k1")]
    assert first.latest_change() == second.latest_change() == 2


_MIGRATE = """
import sys
from warden.storage.engine import open_store
store = open_store(sys.argv[1] or None, sys.argv[2], schema=sys.argv[3] or None)
try:
    store.migrate()
finally:
    store.close()
"""


def test_concurrent_first_migrations_in_separate_processes_all_succeed(
        sql_open_args: tuple[str | None, str, str | None], open_sql_store: Callable[[], Store]) -> None:
    argv = [sys.executable, "-c", _MIGRATE, *(arg or "" for arg in sql_open_args)]
    children = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    for child in children:
        _, err = child.communicate(timeout=60)
        assert (child.returncode, err) == (0, b""), err.decode()
    store = open_sql_store()
    store.migrate()  # already at head
    store.save_api(api())
    assert store.load_apis() == [api()]


def test_change_log_readers_never_miss_a_concurrently_committed_change(
        open_sql_store: Callable[[], Store]) -> None:
    writers = [open_sql_store() for _ in range(4)]
    reader = open_sql_store()
    reader.migrate()
    done = threading.Event()
    seen: list[int] = []

    def poll() -> None:  # a cursor-style consumer: no look-back, it trusts the order
        while True:
            finished = done.is_set()
            seen.extend(c.seq for c in reader.changes_since(seen[-1] if seen else 0))
            if finished:
                return
            time.sleep(0.001)  # a spinning thread would starve the writers of the GIL

    def write(n: int) -> None:
        for i in range(25):
            writers[n].revoke_token(RevokedToken(f"jti-{n}-{i}", "svc-1", T0))

    with ThreadPoolExecutor(max_workers=4) as pool:
        poller = pool.submit(poll)
        for future in [pool.submit(write, n) for n in range(len(writers))]:
            future.result()
        done.set()
        poller.result()
    assert seen == [c.seq for c in reader.changes_since(0)]
    assert len(seen) == 100


def test_migrations_build_exactly_the_schema_the_code_uses(open_sql_store: Callable[[], Store],
                                                           sql_engine: Engine) -> None:
    open_sql_store().migrate()
    with sql_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


# opening SQL stores ------------------------------------------------------------------
def test_open_store_without_url_uses_wal_sqlite_in_a_private_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    url = parse_database_url(None, str(data_dir))
    assert url.drivername == "sqlite+pysqlite"
    assert url.database == str(data_dir / "warden.db")
    assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
    engine = build_engine(url)
    try:
        with engine.connect() as conn:
            pragmas = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                       for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")}
    finally:
        engine.dispose()
    assert pragmas == {"journal_mode": "wal", "busy_timeout": 5000, "foreign_keys": 1, "synchronous": 1}


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgres_urls_are_normalised_to_psycopg3(scheme: str, tmp_path: Path) -> None:
    parsed = parse_database_url(f"{scheme}://u:pw@db.example:5433/warden", str(tmp_path))
    assert (parsed.drivername, parsed.host, parsed.port, parsed.database, parsed.password) == (
        "postgresql+psycopg", "db.example", 5433, "warden", "pw")


def test_sqlite_url_with_a_path_is_accepted(tmp_path: Path) -> None:
    parsed = parse_database_url(f"sqlite:///{tmp_path}/x.db", "unused")
    assert (parsed.drivername, parsed.database) == ("sqlite+pysqlite", f"{tmp_path}/x.db")


@pytest.mark.parametrize("url", ["mysql://u:hunter2@h/db", "postgresql+psycopg2://u:hunter2@h/db",
                                 "sqlite://", "sqlite:///:memory:", "not a url hunter2"])
def test_unsupported_urls_raise_config_error_naming_the_accepted_forms(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_database_url(url, str(tmp_path))
    message = str(raised.value)
    assert "hunter2" not in message and "\n" not in message
    assert "sqlite:///" in message


def test_schema_option_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        open_store(None, str(tmp_path), schema="warden")
    with pytest.raises(ConfigError):
        open_store("postgresql://h/db", str(tmp_path), schema="x; DROP TABLE apis")


def test_redact_url_hides_passwords() -> None:
    assert redact_url("postgresql://warden:hunter2@db:5432/w") == "postgresql://warden:***@db:5432/w"
    assert "hunter2" not in redact_url("postgresql://db/w?user=warden&password=hunter2")
    assert redact_url("postgresql://db/w") == "postgresql://db/w"


def test_unreachable_postgres_raises_storage_unavailable_without_the_password(tmp_path: Path) -> None:
    store = open_store("postgresql://warden:hunter2-pw@127.0.0.1:1/warden", str(tmp_path))
    try:
        for operation in (store.ping, store.migrate, store.load_apis, lambda: store.save_api(api())):
            with pytest.raises(StorageUnavailable) as raised:
                operation()
            message = str(raised.value)
            assert "hunter2" not in message and "\n" not in message
            assert "127.0.0.1:1" in message
    finally:
        store.close()


def test_database_errors_surface_as_storage_errors(open_sql_store: Callable[[], Store]) -> None:
    with pytest.raises(StorageError):
        open_sql_store().load_apis()  # not migrated: no tables


# client metadata and single-use assertions ----------------------------------------
def test_client_metadata_round_trips(store: Store) -> None:
    from warden.core.client_metadata import FederatedIdentity, parse_client_metadata
    from warden.jose import generate_private_key, public_jwk

    jwks = {"keys": [public_jwk(generate_private_key("ES256"), kid="k1", alg="ES256")]}
    meta = parse_client_metadata({"jwks": jwks, "dpop_bound_access_tokens": True,
                                  "federated": [{"issuer": "https://k8s.example", "subject": "system:sa:ns:app",
                                                 "claims": {"kubernetes.io/namespace": "ns"}}]})
    store.save_api(api())
    c = Client("svc-m", "meta", AuthMethod.PRIVATE_KEY_JWT, metadata=meta, created_at=T0)
    store.create_client(c, [], [])
    loaded = store.load_client("svc-m")
    assert loaded == c
    assert loaded is not None and loaded.metadata.federated == (
        FederatedIdentity("https://k8s.example", "system:sa:ns:app", (("kubernetes.io/namespace", "ns"),)),)
    assert store.load_clients() == [c]


def test_use_assertion_accepts_each_key_once_until_purged(store: Store) -> None:
    assert store.use_assertion("c1:jti-1", T0 + 60) is True
    assert store.use_assertion("c1:jti-1", T0 + 60) is False
    assert store.use_assertion("c2:jti-1", T0 + 60) is True
    assert store.purge_assertions(T0) == 0
    assert store.purge_assertions(T0 + 61) == 2
    assert store.use_assertion("c1:jti-1", T0 + 120) is True


def test_racing_assertion_copies_exactly_one_wins(open_sql_store: Callable[[], Store]) -> None:
    stores = [open_sql_store() for _ in range(5)]  # like five server processes
    stores[0].migrate()
    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(lambda i: stores[i % 5].use_assertion("c:racing", T0 + 60), range(50)))
    assert results.count(True) == 1


# the registry's miss path and bulk seeding --------------------------------------------
def test_count_clients_stops_at_the_limit(granted: Store) -> None:
    granted.create_client(client("svc-2"), [], [])
    assert granted.count_clients() == 2
    assert granted.count_clients(limit=1) == 1
    assert granted.count_clients(limit=5) == 2


def test_load_client_records_gives_each_named_client_with_its_grants_and_secrets(granted: Store) -> None:
    granted.add_secret(secret("sec-0", created_at=T0 - 5))  # created first, listed first
    granted.create_client(client("svc-2"), [], [])
    records = granted.load_client_records(["svc-2", "nobody", "svc-1", "svc-1"])
    assert [r.client.client_id for r in records] == ["svc-1", "svc-2"]
    one, two = records
    assert one.client == granted.load_client("svc-1")
    assert one.grants == tuple(granted.load_grants("svc-1"))
    assert [g.position for g in one.grants] == [0, 1]
    assert one.secrets == tuple(granted.load_secrets("svc-1"))
    assert [s.secret_id for s in one.secrets] == ["sec-0", "sec-1"]
    assert (two.grants, two.secrets) == ((), ())
    assert granted.load_client_records([]) == []
    assert granted.load_client_records(["nobody"]) == []


def test_create_clients_writes_every_client_and_logs_each(store: Store) -> None:
    from warden.storage.contract import ClientRecord

    store.save_api(api())
    since = store.latest_change()
    records = [ClientRecord(client(f"bulk-{i}"), (Grant(f"bulk-{i}", API_A, ("read",), 0),),
                            (secret(f"bs-{i}", f"bulk-{i}"),)) for i in range(3)]
    store.create_clients(records)
    assert store.load_client_records([f"bulk-{i}" for i in range(3)]) == records
    assert logged(store, since) == [(ChangeKind.CLIENT, f"bulk-{i}") for i in range(3)]


@pytest.mark.parametrize("problem", ["existing id", "unknown API", "repeated id"])
def test_create_clients_is_all_or_nothing(granted: Store, problem: str) -> None:
    from warden.storage.contract import ClientRecord

    fine = ClientRecord(client("new-1"), (Grant("new-1", API_A, ("read",), 0),), (secret("ns-1", "new-1"),))
    bad = {"existing id": ClientRecord(client("svc-1"), (), ()),
           "unknown API": ClientRecord(client("new-2"), (Grant("new-2", "https://nope.example", ("x",), 0),), ()),
           "repeated id": ClientRecord(client("new-1"), (), ())}[problem]
    since = granted.latest_change()
    with pytest.raises(NotFound if problem == "unknown API" else Conflict):
        granted.create_clients([fine, bad])
    assert granted.load_client("new-1") is None
    assert granted.latest_change() == since


def test_federated_identities_are_found_by_issuer_and_subject_through_every_change(store: Store) -> None:
    import dataclasses

    from warden.core.client_metadata import parse_client_metadata
    from warden.storage.contract import ClientRecord

    def bound(*subjects: str) -> Any:
        return parse_client_metadata({"federated": [{"issuer": "https://ci.example", "subject": s}
                                                    for s in subjects]})

    a = Client("fed-a", "a", AuthMethod.PRIVATE_KEY_JWT, metadata=bound("repo:x", "repo:y"), created_at=T0)
    store.create_client(a, [], [])
    store.create_clients([ClientRecord(Client("fed-b", "b", AuthMethod.PRIVATE_KEY_JWT, metadata=bound("repo:x"),
                                              created_at=T0), (), ())])
    assert store.load_federated_client_ids("https://ci.example", "repo:x") == ["fed-a", "fed-b"]
    assert store.load_federated_client_ids("https://ci.example", "repo:y") == ["fed-a"]
    assert store.load_federated_client_ids("https://other.example", "repo:x") == []
    store.update_client(dataclasses.replace(a, metadata=bound("repo:z")))
    assert store.load_federated_client_ids("https://ci.example", "repo:x") == ["fed-b"]
    assert store.load_federated_client_ids("https://ci.example", "repo:y") == []
    assert store.load_federated_client_ids("https://ci.example", "repo:z") == ["fed-a"]
    store.delete_client("fed-b")
    assert store.load_federated_client_ids("https://ci.example", "repo:x") == []


def test_migration_0007_indexes_the_federated_identities_of_existing_clients(
        open_sql_store: Callable[[], Store], sql_engine: Engine) -> None:
    from alembic import command
    from sqlalchemy import text

    from warden.storage.migrations import alembic_config

    with sql_engine.connect() as conn:
        command.upgrade(alembic_config(conn), "0004")
        meta = ('{"federated": [{"issuer": "https://ci.example", "subject": "repo:x"}, '
                '{"issuer": "https://ci.example", "subject": "repo:y"}]}')
        for client_id, metadata_json in (("old-fed", meta), ("old-plain", "{}")):
            conn.execute(text("INSERT INTO clients (client_id, name, auth_method, enabled, metadata, created_at) "
                              "VALUES (:c, :c, 'private_key_jwt', true, :m, 0)"), {"c": client_id, "m": metadata_json})
        conn.commit()
    store = open_sql_store()
    store.migrate()
    assert store.load_federated_client_ids("https://ci.example", "repo:x") == ["old-fed"]
    assert store.load_federated_client_ids("https://ci.example", "repo:y") == ["old-fed"]
