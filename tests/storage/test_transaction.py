"""`Store.transaction()` on memory, SQLite and PostgreSQL, and `warden apply` built on it: a failure
in the middle of an apply (here injected into the store after some of its writes) leaves nothing
written, change log and audit included."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from warden.core.api import Api
from warden.core.client import Client, Grant
from warden.core.clock import FixedClock
from warden.errors import ConfigError, StorageUnavailable
from warden.services.admin import Admin
from warden.services.apply import apply_state, parse_apply_document
from warden.services.audit import AuditSink
from warden.services.kek import KeyMaterial
from warden.storage.contract import Store

API_A = "https://a.example/api"
API_B = "https://b.example/api"
DOCUMENT = {
    "apis": [{"identifier": API_A, "scopes": ["read", "write"]}, {"identifier": API_B, "scopes": ["list"]}],
    "clients": [
        {"client_id": "one", "grants": [{"api": API_A, "scopes": ["read"]}]},
        {"client_id": "two", "grants": [{"api": API_B, "scopes": ["list"]}]},
        {"client_id": "three", "grants": [{"api": API_A, "scopes": ["write"]}]},
    ],
}


def snapshot(store: Store) -> tuple[Any, ...]:
    return (store.load_apis(), store.load_clients(), store.load_grants(), store.load_secrets(),
            store.latest_change(), store.changes_since(0))


class Boom(Exception):
    pass


def test_transaction_commits_every_write_when_the_block_ends(store: Store) -> None:
    before = store.latest_change()
    with store.transaction():
        store.save_api(Api(API_A, ("read",)))
        assert store.load_api(API_A) is not None  # reads inside see the transaction's own writes
        store.create_client(Client("c1", "C1"), [Grant("c1", API_A, ("read",), 0)], [])
    assert store.load_client("c1") is not None and [g.api for g in store.load_grants("c1")] == [API_A]
    assert store.latest_change() == before + 2


def test_transaction_that_raises_writes_nothing_not_even_the_change_log(store: Store) -> None:
    store.save_api(Api(API_B, ("list",)))
    before = snapshot(store)
    with pytest.raises(Boom), store.transaction():
        store.save_api(Api(API_A, ("read",)))
        store.create_client(Client("c1", "C1"), [Grant("c1", API_A, ("read",), 0)], [])
        store.delete_api(API_B)
        raise Boom
    assert snapshot(store) == before


def test_nested_transaction_joins_the_outer_one(store: Store) -> None:
    before = snapshot(store)
    with pytest.raises(Boom), store.transaction():
        with store.transaction():
            store.save_api(Api(API_A, ("read",)))
        assert store.load_api(API_A) is not None  # the inner block did not commit on its own
        raise Boom
    assert snapshot(store) == before


def test_store_after_a_rolled_back_transaction_keeps_working(store: Store) -> None:
    with pytest.raises(Boom), store.transaction():
        store.save_api(Api(API_A, ("read",)))
        raise Boom
    store.save_api(Api(API_A, ("read", "write")))
    assert store.load_api(API_A).scopes == ("read", "write")  # type: ignore[union-attr]


# warden apply ---------------------------------------------------------------------------------
def admin_on(store: Store, out: io.StringIO) -> Admin:
    return Admin(store, KeyMaterial.from_kek(b"k" * 32), FixedClock(), AuditSink(out))


def fail_on_call(store: Store, method: str, n: int) -> Callable[[], int]:
    """Make the store's `method` raise StorageUnavailable on its n-th call (the database going away
    midway); return a counter of the calls that got through."""
    real = getattr(store, method)
    calls = [0]

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == n:
            raise StorageUnavailable("the database went away (injected)")
        return real(*args, **kwargs)

    setattr(store, method, failing)
    return lambda: calls[0]


def test_apply_that_fails_midway_writes_nothing(store: Store) -> None:
    out = io.StringIO()
    admin = admin_on(store, out)
    store.save_api(Api(API_B, ("list", "old")))  # exists: apply updates it before it fails
    before = snapshot(store)
    calls = fail_on_call(store, "create_client", 3)  # two clients written, the third fails
    with pytest.raises(StorageUnavailable):
        apply_state(admin, parse_apply_document(DOCUMENT))
    assert calls() == 3
    admin._audit.flush()
    assert snapshot(store) == before
    assert out.getvalue() == ""  # nothing audited for changes that never happened


def test_apply_refused_by_a_rule_after_earlier_writes_writes_nothing(store: Store) -> None:
    out = io.StringIO()
    admin = admin_on(store, out)
    store.save_api(Api(API_A, ("read", "write")))
    store.create_client(Client("two", "Two"), [Grant("two", API_A, ("write",), 0)], [])
    before = snapshot(store)
    # the APIs and client one are written first; client two's update then needs scope "list" that API_A lacks
    document = dict(DOCUMENT, clients=[DOCUMENT["clients"][0],
                                       {"client_id": "two", "grants": [{"api": API_A, "scopes": ["list"]}]}])
    with pytest.raises(ConfigError, match="defines no scope 'list'"):
        apply_state(admin, parse_apply_document(document))
    admin._audit.flush()
    assert snapshot(store) == before and out.getvalue() == ""


def test_apply_dry_run_checks_against_the_store_and_rolls_back(store: Store) -> None:
    out = io.StringIO()
    admin = admin_on(store, out)
    before = snapshot(store)
    result = apply_state(admin, parse_apply_document(DOCUMENT), dry_run=True)
    assert result.changes == [f"create api {API_A}", f"create api {API_B}", "create client one",
                              "create client two", "create client three"]
    assert result.secrets == []
    admin._audit.flush()
    assert snapshot(store) == before and out.getvalue() == ""


def test_apply_that_succeeds_commits_and_audits_after_the_commit(store: Store, tmp_path: Path) -> None:
    out = io.StringIO()
    admin = admin_on(store, out)
    result = apply_state(admin, parse_apply_document(DOCUMENT))
    admin._audit.flush()
    assert {c.client_id for c in store.load_clients()} == {"one", "two", "three"}
    assert len(result.secrets) == 3
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert events == ["api.created", "api.created", "client.created", "client.created", "client.created"]
    assert all(s.secret not in out.getvalue() for s in result.secrets)
