"""Tenant-scoped administration over HTTP: every admin route, driven by an admin of tenant `alpha`
against tenant `beta`'s objects (and its own), on SQLite, Warden's own HTTP server and PostgreSQL.

`CASES` holds one tenant rule per admin route. The route list is taken from the admin API's router
(`ROUTES`) and its OpenAPI document (which includes the console's extra endpoints), so a route added
without a rule here fails `test_every_admin_route_has_a_tenant_rule`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import jwt as pyjwt
import pytest
from tests.integration.conftest import LiveServer

from warden.server.admin_api import ROUTES
from warden.server.admin_openapi import OPENAPI

ALPHA, BETA = "alpha", "beta"


def q(identifier: str) -> str:
    return quote(identifier, safe="")


@dataclass
class World:
    """Two tenants' objects, a shared API, and three admins (alpha's, beta's, a global one)."""

    server: LiveServer
    alpha: httpx.Client  # admin of tenant alpha (warden:admin)
    beta: httpx.Client
    root: httpx.Client  # global admin
    shared_api: str
    alpha_api: str
    beta_api: str
    a1: str  # alpha's client, and its secret
    a1_secret: str
    b1: str
    b1_secret: str
    b1_secret_id: str
    alpha_admin_id: str
    opened: list[httpx.Client] = field(default_factory=list)

    def token_works(self, client_id: str, secret: str) -> bool:
        self.server.sync()
        return self.server.token(client_id, secret).status_code == 200

    def b1_secret_ids(self) -> list[str]:
        return [s.secret_id for s in self.server.admin.store.load_secrets(self.b1)]


def admin_client(server: LiveServer, tenant: str | None, name: str) -> tuple[httpx.Client, str]:
    admin_api = f"{server.issuer}/admin/v1"
    cid, secret = server.client({admin_api: "warden:admin"}, name=name, tenant=tenant)
    resp = server.token(cid, secret, resource=admin_api)
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    assert pyjwt.decode(token, options={"verify_signature": False}).get("tenant") == tenant
    return httpx.Client(base_url=f"{server.url}/admin/v1", headers={"authorization": f"Bearer {token}"},
                        timeout=10), cid


@pytest.fixture
def world(server: LiveServer) -> Iterator[World]:
    admin = server.admin
    shared = f"https://shared-{id(server)}.example"
    admin.save_api(shared, ["read", "write"])
    alpha_api = f"https://alpha-{id(server)}.example"
    admin.save_api(alpha_api, ["read"], tenant=ALPHA)
    beta_api = f"https://beta-{id(server)}.example"
    admin.save_api(beta_api, ["read"], tenant=BETA)
    a1, a1_secret = server.client({shared: "read", alpha_api: "read"}, name="alpha-one", tenant=ALPHA)
    b1, b1_secret = server.client({shared: "read", beta_api: "read"}, name="beta-one", tenant=BETA)
    alpha, alpha_admin_id = admin_client(server, ALPHA, "alpha-admin")
    beta, _ = admin_client(server, BETA, "beta-admin")
    root, _ = admin_client(server, None, "root-admin")
    w = World(server, alpha, beta, root, shared, alpha_api, beta_api, a1, a1_secret, b1, b1_secret,
              admin.store.load_secrets(b1)[0].secret_id, alpha_admin_id)
    yield w
    for client in (alpha, beta, root, *w.opened):
        client.close()


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["type"] == "about:blank"
    return body


def not_found(resp: httpx.Response) -> None:
    problem(resp, 404)


def forbidden(resp: httpx.Response) -> None:
    assert problem(resp, 403)["error"] == "forbidden"


# one check per route: the tenant rule it enforces ------------------------------------------
def check_list_apis(w: World) -> None:
    seen = {a["identifier"]: a for a in w.alpha.get("/apis").json()["items"]}
    assert w.shared_api in seen and w.alpha_api in seen and w.beta_api not in seen
    assert seen[w.alpha_api]["tenant"] == ALPHA and seen[w.shared_api]["tenant"] is None
    everything = {a["identifier"] for a in w.root.get("/apis").json()["items"]}
    assert {w.shared_api, w.alpha_api, w.beta_api} <= everything


def check_put_api(w: World) -> None:
    before = w.server.admin.store.load_api(w.beta_api)
    resp = w.alpha.put(f"/apis/{q(w.beta_api)}", json={"scopes": ["read", "steal"]})
    assert problem(resp, 409)["error"] == "conflict"  # identifiers are global; beta's API is out of reach
    assert w.server.admin.store.load_api(w.beta_api) == before
    forbidden(w.alpha.put(f"/apis/{q(w.shared_api)}", json={"scopes": ["read", "write", "more"]}))
    fresh = f"https://fresh-{id(w)}.example"
    forbidden(w.alpha.put(f"/apis/{q(fresh)}", json={"scopes": ["read"], "tenant": BETA}))
    forbidden(w.alpha.put(f"/apis/{q(fresh)}", json={"scopes": ["read"], "tenant": None}))  # shared: global only
    assert w.server.admin.store.load_api(fresh) is None
    created = w.alpha.put(f"/apis/{q(fresh)}", json={"scopes": ["read"]})
    assert created.status_code == 200 and created.json()["tenant"] == ALPHA
    updated = w.alpha.put(f"/apis/{q(w.alpha_api)}", json={"scopes": ["read", "write"]})
    assert updated.status_code == 200 and updated.json()["changed"] is True and updated.json()["tenant"] == ALPHA
    # a global admin may still change anyone's API, but not move one away from the clients it is granted to
    assert w.root.put(f"/apis/{q(w.beta_api)}", json={"scopes": ["read"], "name": "Beta"}).status_code == 200
    moved = w.root.put(f"/apis/{q(w.beta_api)}", json={"scopes": ["read"], "tenant": ALPHA})
    assert problem(moved, 400)["detail"].startswith(f"API {w.beta_api} is granted to 1 client(s) outside")


def check_delete_api(w: World) -> None:
    not_found(w.alpha.delete(f"/apis/{q(w.beta_api)}"))
    assert w.server.admin.store.load_api(w.beta_api) is not None
    forbidden(w.alpha.delete(f"/apis/{q(w.shared_api)}"))
    mine = f"https://disposable-{id(w)}.example"
    assert w.alpha.put(f"/apis/{q(mine)}", json={"scopes": ["read"]}).status_code == 200
    assert w.alpha.delete(f"/apis/{q(mine)}").status_code == 204


def check_list_clients(w: World) -> None:
    ids = {c["client_id"] for c in w.alpha.get("/clients").json()["items"]}
    assert w.a1 in ids and w.alpha_admin_id in ids and w.b1 not in ids
    assert all(c["tenant"] == ALPHA for c in w.alpha.get("/clients").json()["items"])
    assert w.alpha.get("/clients", params={"tenant": BETA}).json()["items"] == []
    everything = {c["client_id"] for c in w.root.get("/clients").json()["items"]}
    assert {w.a1, w.b1} <= everything


def check_create_client(w: World) -> None:
    before = len(w.server.admin.store.load_clients())
    forbidden(w.alpha.post("/clients", json={"name": "x", "tenant": BETA}))
    forbidden(w.alpha.post("/clients", json={"name": "x", "tenant": None}))
    other = w.alpha.post("/clients", json={"name": "x", "grants": [{"api": w.beta_api, "scopes": ["read"]}]})
    assert "unknown API" in problem(other, 400)["detail"]  # another tenant's API does not exist for alpha
    assert len(w.server.admin.store.load_clients()) == before
    made = w.alpha.post("/clients", json={"name": "alpha-two", "grants": [
        {"api": w.alpha_api, "scopes": ["read"]}, {"api": w.shared_api, "scopes": ["read"]}]})
    assert made.status_code == 201 and made.json()["tenant"] == ALPHA
    w.server.wait_for_client(made.json()["client_id"])
    assert w.server.token(made.json()["client_id"], made.json()["client_secret"]).status_code == 200
    # the rule holds for global admins too: a client is granted shared APIs or its own tenant's
    crossed = w.root.post("/clients", json={"name": "x", "tenant": ALPHA,
                                            "grants": [{"api": w.beta_api, "scopes": ["read"]}]})
    assert f"belongs to tenant {BETA}" in problem(crossed, 400)["detail"]
    assert w.root.post("/clients", json={"name": "anywhere", "tenant": BETA}).status_code == 201


def check_get_client(w: World) -> None:
    foreign = w.alpha.get(f"/clients/{w.b1}")
    missing = w.alpha.get("/clients/no-such-client")
    not_found(foreign)
    assert foreign.json()["detail"].replace(w.b1, "ID") == missing.json()["detail"].replace("no-such-client", "ID")
    assert w.alpha.get(f"/clients/{w.a1}").json()["tenant"] == ALPHA
    assert w.root.get(f"/clients/{w.b1}").status_code == 200


def check_patch_client(w: World) -> None:
    not_found(w.alpha.patch(f"/clients/{w.b1}", json={"enabled": False}))
    forbidden(w.alpha.patch(f"/clients/{w.a1}", json={"tenant": BETA}))  # move into another tenant
    forbidden(w.alpha.patch(f"/clients/{w.a1}", json={"tenant": None}))
    grab = w.alpha.patch(f"/clients/{w.a1}", json={"grants": [{"api": w.beta_api, "scopes": ["read"]}]})
    assert "unknown API" in problem(grab, 400)["detail"]
    stored = w.server.admin.store.load_client(w.a1)
    assert stored is not None and stored.tenant == ALPHA
    assert {g.api for g in w.server.admin.store.load_grants(w.a1)} == {w.shared_api, w.alpha_api}
    assert w.token_works(w.b1, w.b1_secret)
    renamed = w.alpha.patch(f"/clients/{w.a1}", json={"name": "alpha-one renamed"})
    assert renamed.status_code == 200 and renamed.json()["changed"] is True
    # a global admin moves clients, but only together with grants the new tenant may hold
    crossed = w.root.patch(f"/clients/{w.a1}", json={"tenant": BETA})
    assert "change its grants in the same update" in problem(crossed, 400)["detail"]
    assert w.root.patch(f"/clients/{w.b1}", json={"name": "beta-one renamed"}).status_code == 200


def check_delete_client(w: World) -> None:
    not_found(w.alpha.delete(f"/clients/{w.b1}"))
    assert w.server.admin.store.load_client(w.b1) is not None
    made = w.alpha.post("/clients", json={"name": "short-lived"}).json()
    assert w.alpha.delete(f"/clients/{made['client_id']}").status_code == 204


def check_list_secrets(w: World) -> None:
    not_found(w.alpha.get(f"/clients/{w.b1}/secrets"))
    assert w.alpha.get(f"/clients/{w.a1}/secrets").status_code == 200


def check_rotate_secret(w: World) -> None:
    not_found(w.alpha.post(f"/clients/{w.b1}/secrets", json={"grace": "0s"}))
    assert len(w.b1_secret_ids()) == 1 and w.token_works(w.b1, w.b1_secret)
    made = w.alpha.post("/clients", json={"name": "rotated"}).json()
    assert w.alpha.post(f"/clients/{made['client_id']}/secrets", json={"grace": "1h"}).status_code == 201


def check_revoke_secret(w: World) -> None:
    not_found(w.alpha.delete(f"/clients/{w.b1}/secrets/{w.b1_secret_id}"))
    # naming its own client with beta's secret id does not reach beta's secret either
    assert w.alpha.delete(f"/clients/{w.a1}/secrets/{w.b1_secret_id}").status_code == 404
    assert w.token_works(w.b1, w.b1_secret)
    made = w.alpha.post("/clients", json={"name": "revoked"}).json()
    assert w.alpha.delete(f"/clients/{made['client_id']}/secrets/{made['secret_id']}").status_code == 204


def check_list_keys(w: World) -> None:
    keys = w.alpha.get("/keys")
    assert keys.status_code == 200 and keys.json()["items"]  # public metadata: every admin reads it


def check_rotate_keys(w: World) -> None:
    before = [(k.kid, k.state) for k in w.server.admin.store.load_keys()]
    forbidden(w.alpha.post("/keys/rotate", json={}))
    assert [(k.kid, k.state) for k in w.server.admin.store.load_keys()] == before
    assert w.root.post("/keys/rotate", json={}).status_code == 200


def check_revoke_tokens(w: World) -> None:
    token = w.server.token(w.b1, w.b1_secret).json()["access_token"]
    jti = pyjwt.decode(token, options={"verify_signature": False})["jti"]
    not_found(w.alpha.post("/tokens/revoke", json={"client_id": w.b1}))
    forbidden(w.alpha.post("/tokens/revoke", json={"jti": jti}))  # a bare jti names no tenant
    stored = w.server.admin.store.load_client(w.b1)
    assert stored is not None and stored.revoked_before is None
    assert jti not in {r.jti for r in w.server.admin.store.load_revoked_tokens(0)}
    assert w.alpha.post("/tokens/revoke", json={"client_id": w.a1}).status_code == 200
    assert w.root.post("/tokens/revoke", json={"jti": jti}).status_code == 200


def check_list_audit(w: World) -> None:
    w.server.token(w.b1, w.b1_secret)
    w.server.token(w.a1, w.a1_secret)
    mine = w.alpha.get("/audit", params={"limit": 1000}).json()["events"]
    assert mine and all(e.get("tenant") == ALPHA for e in mine)
    assert any(e["event"] == "token.issued" and e["client_id"] == w.a1 for e in mine)
    everything = w.root.get("/audit", params={"limit": 1000}).json()["events"]
    assert any(e.get("tenant") == BETA for e in everything) and any("tenant" not in e for e in everything)


def check_list_revocations(w: World) -> None:
    token = w.server.token(w.b1, w.b1_secret).json()["access_token"]
    jti = pyjwt.decode(token, options={"verify_signature": False})["jti"]
    w.server.admin.revoke_jti(jti, client_id=w.b1)
    w.server.admin.revoke_client_tokens(w.b1)
    w.server.admin.revoke_client_tokens(w.a1)
    mine = w.alpha.get("/revocations").json()
    assert w.b1 not in str(mine) and jti not in str(mine)
    assert [c["client_id"] for c in mine["clients"]] == [w.a1]
    everything = w.root.get("/revocations").json()
    assert jti in {t["jti"] for t in everything["tokens"]} and w.b1 in {c["client_id"] for c in everything["clients"]}


def check_console_login_url(w: World) -> None:
    made = w.alpha.post("/console/login-urls", json={})
    assert made.status_code == 201
    browser = httpx.Client(base_url=w.server.url, timeout=10)
    w.opened.append(browser)
    url = made.json()["url"]
    assert browser.get(url[url.index("/console/"):]).status_code == 303
    page = browser.get("/console/")
    csrf = re.search(r'name="warden-csrf" content="([^"]+)"', page.text)
    assert csrf
    headers = {"x-warden-csrf": csrf.group(1)}
    assert browser.get("/console/session").json()["tenant"] == ALPHA
    ids = {c["client_id"] for c in browser.get("/admin/v1/clients", headers=headers).json()["items"]}
    assert w.a1 in ids and w.b1 not in ids
    not_found(browser.get(f"/admin/v1/clients/{w.b1}", headers=headers))
    forbidden(browser.post("/admin/v1/clients", headers=headers, json={"name": "x", "tenant": BETA}))


def check_create_api(w: World) -> None:
    made = w.alpha.post("/apis", json={"identifier": "https://alpha-new.example", "scopes": ["read"]})
    assert made.status_code == 201, made.text
    assert made.json()["tenant"] == ALPHA  # a tenant admin's new API is its tenant's
    forbidden(w.alpha.post("/apis", json={"identifier": "https://beta-new.example", "scopes": ["read"],
                                          "tenant": BETA}))
    assert problem(w.alpha.post("/apis", json={"identifier": w.beta_api, "scopes": ["read"]}), 409)
    assert w.server.admin.store.load_api("https://beta-new.example") is None


def check_get_api(w: World) -> None:
    not_found(w.alpha.get(f"/apis/{q(w.beta_api)}"))
    assert w.alpha.get(f"/apis/{q(w.alpha_api)}").json()["tenant"] == ALPHA
    assert w.alpha.get(f"/apis/{q(w.shared_api)}").status_code == 200
    assert w.root.get(f"/apis/{q(w.beta_api)}").status_code == 200


def check_export(w: World) -> None:
    document = w.alpha.get("/export").json()
    assert [c["client_id"] for c in document["clients"] if c["client_id"] in (w.a1, w.b1)] == [w.a1]
    assert w.beta_api not in str(document) and w.shared_api not in {a["identifier"] for a in document["apis"]}
    everything = w.root.get("/export").json()
    assert {w.a1, w.b1} <= {c["client_id"] for c in everything["clients"]}


def check_apply(w: World) -> None:
    new = {"client_id": "alpha-applied", "name": "alpha applied",
           "grants": [{"api": w.alpha_api, "scopes": ["read"]}]}
    done = w.alpha.post("/apply", json={"document": {"clients": [new]}})
    assert done.status_code == 200, done.text
    assert w.server.admin.store.load_client("alpha-applied").tenant == ALPHA  # absent tenant: the caller's
    stolen = {"client_id": w.b1, "name": "taken over", "grants": [{"api": w.shared_api, "scopes": ["read"]}]}
    assert problem(w.alpha.post("/apply", json={"document": {"clients": [stolen]}}), 409)
    assert w.server.admin.store.load_client(w.b1).name == "beta-one"
    forbidden(w.alpha.post("/apply", json={"document": {"clients": [dict(new, client_id="x2", tenant=BETA)]}}))


def check_approve_client(w: World) -> None:
    from warden.core.client_metadata import ClientMetadata
    from warden.services.admin import GrantSpec

    client, _ = w.server.admin.create_client("beta-pending", [GrantSpec(w.beta_api, ("read",))], tenant=BETA,
                                             metadata=ClientMetadata(pending_approval=True))
    not_found(w.alpha.post(f"/clients/{client.client_id}/approve"))
    assert w.server.admin.store.load_client(client.client_id).metadata.pending_approval
    assert w.beta.post(f"/clients/{client.client_id}/approve").json()["changed"] is True


def check_list_registration_tokens(w: World) -> None:
    made = w.beta.post("/registration-tokens", json={"grants": [{"api": w.beta_api, "scopes": ["read"]}]})
    assert made.status_code == 201 and made.json()["tenant"] == BETA
    mine = w.alpha.get("/registration-tokens").json()["items"]
    assert made.json()["token_id"] not in {t["token_id"] for t in mine}
    assert made.json()["token_id"] in {t["token_id"] for t in w.root.get("/registration-tokens").json()["items"]}


def check_create_registration_token(w: World) -> None:
    made = w.alpha.post("/registration-tokens", json={"grants": [{"api": w.alpha_api, "scopes": ["read"]}]})
    assert made.status_code == 201 and made.json()["tenant"] == ALPHA  # its registrants join alpha
    forbidden(w.alpha.post("/registration-tokens", json={"grants": [{"api": w.shared_api, "scopes": ["read"]}],
                                                          "tenant": BETA}))
    assert problem(w.alpha.post("/registration-tokens",
                                json={"grants": [{"api": w.beta_api, "scopes": ["read"]}]}), 400)


def check_revoke_registration_token(w: World) -> None:
    theirs = w.beta.post("/registration-tokens", json={"grants": [{"api": w.beta_api, "scopes": ["read"]}]}).json()
    not_found(w.alpha.delete(f"/registration-tokens/{theirs['token_id']}"))
    states = {t["token_id"]: t["state"] for t in w.root.get("/registration-tokens").json()["items"]}
    assert states[theirs["token_id"]] == "active"
    mine = w.alpha.post("/registration-tokens", json={"grants": [{"api": w.alpha_api, "scopes": ["read"]}]}).json()
    assert w.alpha.delete(f"/registration-tokens/{mine['token_id']}").status_code == 204


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # as in the OpenAPI document
    sample: str  # a concrete path of that form, matched against the router's patterns
    rule: str
    check: Callable[[World], None]


CASES = [
    Case("POST", "/apis", "/apis", "a new API is the tenant's; another tenant 403; a taken identifier 409",
         check_create_api),
    Case("GET", "/apis/{identifier}", "/apis/https%3A%2F%2Fx.example", "another tenant's API 404", check_get_api),
    Case("GET", "/export", "/export", "own tenant's clients and APIs only", check_export),
    Case("POST", "/apply", "/apply", "into own tenant; another tenant's client id 409; another tenant 403",
         check_apply),
    Case("POST", "/clients/{client_id}/approve", "/clients/c1/approve", "another tenant's 404",
         check_approve_client),
    Case("GET", "/registration-tokens", "/registration-tokens", "own tenant's tokens only",
         check_list_registration_tokens),
    Case("POST", "/registration-tokens", "/registration-tokens", "for own tenant only (403); own or shared APIs",
         check_create_registration_token),
    Case("DELETE", "/registration-tokens/{token_id}", "/registration-tokens/rt_1", "another tenant's 404",
         check_revoke_registration_token),
    Case("GET", "/apis", "/apis", "shared and own tenant's APIs only", check_list_apis),
    Case("PUT", "/apis/{identifier}", "/apis/https%3A%2F%2Fx.example",
         "own tenant's only; another tenant's 409 (ids are global), shared 403, into another tenant 403",
         check_put_api),
    Case("DELETE", "/apis/{identifier}", "/apis/https%3A%2F%2Fx.example",
         "own tenant's only; another tenant's 404, shared 403", check_delete_api),
    Case("GET", "/clients", "/clients", "own tenant's clients only", check_list_clients),
    Case("POST", "/clients", "/clients", "into own tenant only (403); grants of shared or own APIs (400)",
         check_create_client),
    Case("GET", "/clients/{client_id}", "/clients/c1", "another tenant's client 404", check_get_client),
    Case("PATCH", "/clients/{client_id}", "/clients/c1", "another tenant's 404; moving out 403; grants 400",
         check_patch_client),
    Case("DELETE", "/clients/{client_id}", "/clients/c1", "another tenant's 404", check_delete_client),
    Case("GET", "/clients/{client_id}/secrets", "/clients/c1/secrets", "another tenant's 404", check_list_secrets),
    Case("POST", "/clients/{client_id}/secrets", "/clients/c1/secrets", "another tenant's 404",
         check_rotate_secret),
    Case("DELETE", "/clients/{client_id}/secrets/{secret_id}", "/clients/c1/secrets/s1", "another tenant's 404",
         check_revoke_secret),
    Case("GET", "/keys", "/keys", "read-only: every admin lists key metadata", check_list_keys),
    Case("POST", "/keys/rotate", "/keys/rotate", "global admins only (403)", check_rotate_keys),
    Case("POST", "/tokens/revoke", "/tokens/revoke", "by own tenant's client_id only (404); by jti 403",
         check_revoke_tokens),
    Case("GET", "/audit", "/audit", "events carrying own tenant only", check_list_audit),
    Case("GET", "/revocations", "/revocations", "own tenant's clients' revocations only", check_list_revocations),
    Case("POST", "/console/login-urls", "/console/login-urls", "the session has the minting admin's tenant",
         check_console_login_url),
]


def test_every_admin_route_has_a_tenant_rule():
    documented = {(method.upper(), path) for path, ops in OPENAPI("https://as.example")["paths"].items()
                  for method in ops if method in ("get", "put", "post", "patch", "delete")}
    ruled = {(c.method, c.path) for c in CASES}
    assert documented - ruled == set(), "admin routes without a tenant rule in CASES"
    assert ruled - documented == set(), "CASES names routes the admin API does not have"
    for route in ROUTES:  # and the router has no route the document leaves out
        assert any(c.method == route.method and route.pattern.fullmatch(c.sample) for c in CASES), route


@pytest.mark.parametrize("case", CASES, ids=[f"{c.method} {c.path}" for c in CASES])
def test_tenant_admin_cannot_reach_another_tenant(world: World, case: Case):
    case.check(world)


def test_tenant_admin_changes_are_audited_with_the_tenant(world: World):
    made = world.alpha.post("/clients", json={"name": "audited"}).json()
    world.alpha.patch(f"/clients/{made['client_id']}", json={"enabled": False})
    world.alpha.post(f"/clients/{made['client_id']}/secrets", json={"grace": "0s"})
    world.alpha.delete(f"/clients/{made['client_id']}")
    events = [e for e in world.server.audit_events() if e.get("client_id") == made["client_id"]]
    assert {e["event"] for e in events} >= {"client.created", "client.disabled", "client.secret_rotated",
                                            "client.deleted"}
    assert all(e["tenant"] == ALPHA and e["actor"] == f"client:{world.alpha_admin_id}" for e in events)
    assert made["client_secret"] not in str(world.server.audit_events())
    world.server.token(world.b1, world.b1_secret)
    issued = [e for e in world.server.audit_events() if e["event"] == "token.issued" and e["client_id"] == world.b1]
    assert issued and issued[-1]["tenant"] == BETA
    assert world.server.token(world.a1, "wrong" * 8).status_code == 401
    failed = world.alpha.get("/audit", params={"event": "client.authentication_failed"}).json()["events"]
    assert [(e["client_id"], e["tenant"]) for e in failed] == [(world.a1, ALPHA)]


def test_an_admin_token_minted_before_its_client_moved_tenant_is_refused(world: World):
    assert world.alpha.get("/clients").status_code == 200
    world.server.admin.update_client(world.alpha_admin_id, tenant="gamma")
    world.server.sync()
    stale = world.alpha.get("/clients")
    assert problem(stale, 401)["error"] == "invalid_token"
    fresh, _ = admin_client(world.server, "gamma", "gamma-admin")
    try:
        ids = {c["client_id"] for c in fresh.get("/clients").json()["items"]}
        assert world.alpha_admin_id in ids and world.a1 not in ids
    finally:
        fresh.close()


def test_a_global_admin_still_reaches_every_tenant(world: World):
    assert world.root.patch(f"/clients/{world.b1}", json={"tenant": ALPHA, "grants": [
        {"api": world.shared_api, "scopes": ["read"]}]}).status_code == 200
    assert world.b1 in {c["client_id"] for c in world.alpha.get("/clients").json()["items"]}
    assert world.root.delete(f"/clients/{world.b1}").status_code == 204
    assert world.root.post("/tokens/revoke", json={"client_id": world.a1}).status_code == 200
    assert world.root.put(f"/apis/{q(world.shared_api)}", json={"scopes": ["read", "write"],
                                                                "name": "Shared"}).status_code == 200


def test_a_tenant_admin_created_with_the_cli_administers_its_tenant_only(sqlite_server: LiveServer, capsys,
                                                                          monkeypatch):
    from warden.cli.main import main

    monkeypatch.setenv("WARDEN_AUDIT_SINK", str(sqlite_server.audit_path))
    data_dir = sqlite_server.settings.data_dir
    admin_api = f"{sqlite_server.issuer}/admin/v1"
    assert main(["clients", "create", "acme-ops", "--grant", f"{admin_api}=warden:admin", "--tenant", "acme",
                 "--json", "--data-dir", data_dir]) == 0
    ops = json.loads(capsys.readouterr().out)
    theirs, _ = sqlite_server.client({admin_api: "warden:admin:read"}, name="globex reader", tenant="globex")
    sqlite_server.wait_for_client(ops["client_id"])
    token = sqlite_server.token(ops["client_id"], ops["client_secret"], resource=admin_api).json()["access_token"]
    with httpx.Client(base_url=admin_api, headers={"authorization": f"Bearer {token}"}, timeout=10) as api:
        assert {c["client_id"] for c in api.get("/clients").json()["items"]} == {ops["client_id"]}
        assert api.get(f"/clients/{theirs}").status_code == 404
        assert api.post("/clients", json={"name": "x", "tenant": "globex"}).status_code == 403
