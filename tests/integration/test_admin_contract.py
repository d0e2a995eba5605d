"""The admin API's contract: every field typed and ranged (400 problem details, nothing stored), a valid
OpenAPI 3.1 document, pagination and filters, and schemathesis against the running server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.integration.conftest import LiveServer
from tests.integration.test_admin_api import admin_token

from warden.server.admin_openapi import OPENAPI


@pytest.fixture
def api(sqlite_server: LiveServer) -> httpx.Client:
    client = httpx.Client(base_url=f"{sqlite_server.url}/admin/v1", timeout=10,
                          headers={"authorization": f"Bearer {admin_token(sqlite_server)}"})
    yield client
    client.close()


def _snapshot(server: LiveServer) -> tuple[object, ...]:
    store = server.admin.store
    return (sorted((c.client_id, c.name, c.enabled, c.tenant, c.rate_limit) for c in store.load_clients()),
            sorted((a.identifier, a.scopes, a.token_ttl) for a in store.load_apis()),
            sorted((g.client_id, g.api, g.scopes) for g in store.load_grants()))


def _problem(resp: httpx.Response, status: int = 400) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["status"] == status and body["type"] == "about:blank" and body["title"]
    assert "warden " not in str(body.get("detail", "")) and "--" not in str(body.get("detail", ""))
    return body


BAD_CLIENTS = [
    {"name": "x", "rate_limit": "abc"},
    {"name": "x", "tenant": 5},
    {"name": "x", "rate_limit": -1},
    {"name": "x", "rate_limit": 0},
    {"name": "x", "enabled": "no"},
    {"name": "x", "enabled": 0},
    {"name": 7},
    {"name": ""},
    {"name": "x", "grants": "read"},
    {"name": "x", "grants": [{"api": 1, "scopes": ["read"]}]},
    {"name": "x", "grants": [{"api": "https://a.example", "scopes": "read"}]},
    {"name": "x", "auth_method": ["client_secret_basic"]},
    {"name": "x", "client_id": "has space"},
    {"name": "x", "metadata": 5},
    {"name": "x", "metadata": {"jwks": "nope"}},
    {"name": "x", "grants": [{"api": "https://nowhere.example", "scopes": ["r"]}]},  # refusals name no CLI command
    {"name": "x", "auth_method": "private_key_jwt"},  # ... nor CLI flags
]


@pytest.mark.parametrize("body", BAD_CLIENTS, ids=json.dumps)
def test_wrong_client_field_types_and_ranges_are_400_and_store_nothing(sqlite_server: LiveServer, api: httpx.Client,
                                                                        body: dict[str, object]):
    before = _snapshot(sqlite_server)
    _problem(api.post("/clients", json=body))
    assert _snapshot(sqlite_server) == before


@pytest.mark.parametrize("raw", [b'{"name": "x", "rate_limit": NaN}', b'{"name": "x", "rate_limit": Infinity}',
                                 b'{"name": "x", "rate_limit": 1e400}', b'{"name": "x", "rate_limit": -Infinity}'])
def test_nan_and_infinite_numbers_are_refused(sqlite_server: LiveServer, api: httpx.Client, raw: bytes):
    before = _snapshot(sqlite_server)
    _problem(api.post("/clients", content=raw, headers={"content-type": "application/json"}))
    assert _snapshot(sqlite_server) == before


@pytest.mark.parametrize("body", [{"scopes": ["read"], "ttl": [1]}, {"scopes": ["read"], "ttl": -5},
                                  {"scopes": ["read"], "ttl": True}, {"scopes": ["read"], "ttl": "soon"},
                                  {"scopes": "read"}, {"scopes": []}, {"scopes": [1]}, {"scopes": ["r"], "alg": 1},
                                  {"scopes": ["r"], "dpop_required": "yes"}, {"scopes": ["r"], "name": 5},
                                  {"scopes": ["r"], "extra": 1}])
def test_wrong_api_fields_are_400_and_store_nothing(sqlite_server: LiveServer, api: httpx.Client,
                                                    body: dict[str, object]):
    before = _snapshot(sqlite_server)
    _problem(api.put(f"/apis/{quote('https://typed.example', safe='')}", json=body))
    assert _snapshot(sqlite_server) == before


def test_patch_validates_like_create_and_changes_nothing(sqlite_server: LiveServer, api: httpx.Client):
    created = api.post("/clients", json={"name": "patched"})
    cid = created.json()["client_id"]
    before = _snapshot(sqlite_server)
    for body in ({"enabled": "no"}, {"rate_limit": -1}, {"rate_limit": "abc"}, {"tenant": 5}, {"client_id": "x"},
                 {"name": None}):
        _problem(api.patch(f"/clients/{cid}", json=body))
    assert _snapshot(sqlite_server) == before
    assert api.patch(f"/clients/{cid}", json={"rate_limit": 2.5, "tenant": None}).json()["rate_limit"] == 2.5


def test_other_bodies_are_typed(api: httpx.Client):
    _problem(api.post("/tokens/revoke", json={}))
    _problem(api.post("/tokens/revoke", json={"jti": 5}))
    _problem(api.post("/tokens/revoke", json={"jti": "a", "client_id": "b"}))
    _problem(api.post("/keys/rotate", json={"algs": "ES256"}))
    _problem(api.post("/clients/nobody/secrets", json={"grace": [1]}))


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                  max_size=3), max_leaves=8)
_FIELDS = st.sampled_from(["name", "grants", "auth_method", "tenant", "client_id", "rate_limit", "enabled",
                           "metadata", "other"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(_FIELDS, _JSON, max_size=5))
def test_generated_client_bodies_never_5xx_and_store_nothing_on_400(sqlite_server: LiveServer, api: httpx.Client,
                                                                     body: dict[str, object]):
    before = _snapshot(sqlite_server)
    resp = api.post("/clients", content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert resp.status_code in (201, 400, 409), resp.text
    if resp.status_code != 201:
        assert resp.headers["content-type"] == "application/problem+json"
        assert _snapshot(sqlite_server) == before


def test_openapi_document_is_valid_openapi_3_1(sqlite_server: LiveServer):
    from openapi_spec_validator import validate

    doc = httpx.get(f"{sqlite_server.url}/admin/v1/openapi.json").json()
    validate(doc)
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    from warden.server.admin_api import ROUTES

    assert len(ids) == len(set(ids)) == len(ROUTES) + 3  # one per route, and 3 for the console (admin_extra.py)
    for ops in doc["paths"].values():
        for method, op in ops.items():
            if method in ("post", "put", "patch"):
                assert "requestBody" in op
            for code, resp in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert list(resp["content"]) == ["application/problem+json"]
    assert OPENAPI("https://a.example")["paths"].keys() == doc["paths"].keys()


def test_lists_paginate_with_an_opaque_cursor_and_filter(api: httpx.Client):
    for i in range(5):
        assert api.post("/clients", json={"name": f"page-{i}", "client_id": f"page{i}",
                                          "tenant": "even" if i % 2 == 0 else "odd",
                                          "enabled": i != 4}).status_code == 201
    seen, cursor = [], None
    while True:
        page = api.get("/clients", params={"limit": 2, "name": "PAGE-", **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        seen += [c["client_id"] for c in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        assert len(page.json()["items"]) <= 2
        if cursor is None:
            break
    assert seen == [f"page{i}" for i in range(5)]
    assert [c["client_id"] for c in api.get("/clients", params={"tenant": "even", "enabled": "true"}).json()[
        "items"]] == ["page0", "page2"]
    assert api.get("/clients", params={"auth_method": "private_key_jwt", "name": "page"}).json()["items"] == []
    for bad in ({"limit": "0"}, {"limit": "x"}, {"enabled": "yes"}, {"cursor": "%%%"}, {"bogus": "1"},
                {"auth_method": "nope"}):
        _problem(api.get("/clients", params=bad))


@pytest.mark.skipif(shutil.which("schemathesis", path=os.path.dirname(sys.executable)) is None,
                    reason="schemathesis is not installed (test extra)")
def test_schemathesis_finds_no_5xx_and_no_response_outside_the_schema(sqlite_server: LiveServer, tmp_path: Path):
    token = admin_token(sqlite_server)
    exe = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    proc = subprocess.run(
        [exe, "run", f"{sqlite_server.url}/admin/v1/openapi.json", "--url", f"{sqlite_server.url}/admin/v1",
         "-H", f"Authorization: Bearer {token}", "--max-examples", "8", "--seed", "1",
         "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
         "--phases", "examples,coverage,fuzzing", "--generation-database", "none", "--request-timeout", "10",
         "--suppress-health-check", "filter_too_much"],  # API identifiers are URLs: most generated strings are not
        check=False, capture_output=True, text=True, timeout=500, cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
