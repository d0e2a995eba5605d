"""The admin API routes behind the remote CLI: POST /apis (refuses an existing identifier),
GET /apis/{identifier}, GET /export and POST /apply (one transaction, dry run), on SQLite and
PostgreSQL servers."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from tests.integration.conftest import LiveServer
from tests.integration.test_admin_api import admin_token


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=f"{server.url}/admin/v1",
                          headers={"authorization": f"Bearer {admin_token(server)}"}, timeout=10)
    yield client
    client.close()


def document(prefix: str, scope: str = "read") -> dict[str, object]:
    ident = f"https://{prefix}.example"
    return {"apis": [{"identifier": ident, "scopes": ["read", "write"], "ttl": "5m"}],
            "clients": [{"client_id": f"{prefix}-one", "grants": [{"api": ident, "scopes": ["read"]}]},
                        {"client_id": f"{prefix}-two", "tenant": "acme", "grants": [{"api": ident, "scopes": [scope]}]}]}


def test_create_api_refuses_an_existing_identifier_and_get_shows_it(api: httpx.Client) -> None:
    body = {"identifier": "https://created.example", "scopes": ["read"], "ttl": "1h", "alg": "RS256"}
    created = api.post("/apis", json=body)
    assert created.status_code == 201 and created.json()["ttl"] == 3600 and created.json()["changed"] is True
    again = api.post("/apis", json=body | {"ttl": "15m"})
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    shown = api.get(f"/apis/{quote('https://created.example', safe='')}")
    assert shown.status_code == 200 and shown.json()["ttl"] == 3600 and shown.json()["alg"] == "RS256"
    assert api.get(f"/apis/{quote('https://missing.example', safe='')}").status_code == 404
    assert api.post("/apis", json={"scopes": ["read"]}).status_code == 400  # identifier is required


def test_apply_refused_midway_writes_nothing(server: LiveServer, api: httpx.Client) -> None:
    before = api.get("/export").json()
    seq = server.admin.store.latest_change()
    # the API and client one are written before client two's grant names a scope the API lacks
    refused = api.post("/apply", json={"document": document("midway", scope="delete")})
    assert refused.status_code == 400 and "delete" in refused.json()["detail"]
    assert api.get("/export").json() == before
    assert server.admin.store.latest_change() == seq  # not even the change log moved
    assert not [e for e in server.audit_events() if "midway" in str(e)]


def test_apply_dry_run_answers_the_changes_and_writes_nothing(server: LiveServer, api: httpx.Client) -> None:
    seq = server.admin.store.latest_change()
    planned = api.post("/apply", json={"document": document("planned"), "dry_run": True})
    assert planned.status_code == 200, planned.text
    assert planned.json() == {"changes": ["create api https://planned.example", "create client planned-one",
                                          "create client planned-two"], "dry_run": True, "secrets": []}
    assert server.admin.store.latest_change() == seq


def test_apply_then_export_round_trip(server: LiveServer, api: httpx.Client) -> None:
    given = "wsec_" + "G" * 42
    applied = api.post("/apply", json={"document": document("trip"), "secrets": {"trip-two": given}})
    assert applied.status_code == 200, applied.text
    assert [s["client_id"] for s in applied.json()["secrets"]] == ["trip-one", "trip-two"]
    assert applied.json()["secrets"][1]["client_secret"] == given
    exported = api.get("/export").json()
    assert "trip-two" in [c["client_id"] for c in exported["clients"]]
    assert all("admin/v1" not in a["identifier"] for a in exported["apis"])  # the built-in admin API is left out
    again = api.post("/apply", json={"document": exported})
    assert again.status_code == 200 and again.json()["changes"] == []
    server.wait_for_client("trip-two")
    assert server.token("trip-two", given).status_code == 200


def test_apply_checks_its_body(api: httpx.Client) -> None:
    assert api.post("/apply", json={}).status_code == 400
    assert api.post("/apply", json={"document": {"apis": "x"}}).status_code == 400
    assert api.post("/apply", json={"document": {"unknown": []}}).status_code == 400
    short = api.post("/apply", json={"document": document("short"), "secrets": {"short-one": "too-short"}})
    assert short.status_code == 400


def test_read_only_admin_exports_but_cannot_apply(server: LiveServer) -> None:
    headers = {"authorization": f"Bearer {admin_token(server, 'warden:admin:read')}"}
    with httpx.Client(base_url=f"{server.url}/admin/v1", headers=headers, timeout=10) as reader:
        assert reader.get("/export").status_code == 200
        assert reader.post("/apply", json={"document": document("ro"), "dry_run": True}).status_code == 403
        assert reader.post("/apis", json={"identifier": "https://ro.example", "scopes": ["r"]}).status_code == 403
