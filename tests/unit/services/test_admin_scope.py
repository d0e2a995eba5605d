"""Tenant-scoped administration in the services (in-memory store): the scope rules, and `apply` /
`export` run by a tenant admin, which reach only that tenant's objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from warden.core.api import Api
from warden.core.client import Client
from warden.core.clock import FixedClock
from warden.core.tenancy import AdminScope, grant_crosses_tenant
from warden.errors import ConfigError, Conflict, Forbidden, NotFound
from warden.services.admin import Admin, GrantSpec
from warden.services.apply import apply_state, export_state, parse_apply_file
from warden.services.audit import AuditSink
from warden.services.kek import KeyMaterial
from warden.storage.memory import MemoryStore

SHARED, ACME_API, GLOBEX_API = "https://shared.example", "https://acme.example", "https://globex.example"


@pytest.fixture
def root() -> Admin:
    admin = Admin(MemoryStore(), KeyMaterial.from_kek(b"k" * 32), FixedClock(), AuditSink())
    admin.save_api(SHARED, ["read"])
    admin.save_api(ACME_API, ["read"], tenant="acme")
    admin.save_api(GLOBEX_API, ["read"], tenant="globex")
    admin.create_client("a", [GrantSpec(ACME_API, ("read",))], client_id="acme-1", tenant="acme")
    admin.create_client("g", [GrantSpec(GLOBEX_API, ("read",))], client_id="globex-1", tenant="globex")
    return admin


def scoped(root: Admin, tenant: str) -> Admin:
    return Admin(root.store, root._material, root._clock, AuditSink(), actor=f"client:{tenant}-admin",
                 scope=AdminScope(tenant))


def test_scope_rules():
    acme, everyone = AdminScope("acme"), AdminScope()
    mine, theirs, free = Client("a", "a", tenant="acme"), Client("b", "b", tenant="globex"), Client("c", "c")
    assert everyone.is_global and not acme.is_global
    assert [acme.sees_client(c) for c in (mine, theirs, free)] == [True, False, False]
    assert all(everyone.sees_client(c) for c in (mine, theirs, free))
    shared, own, other = Api(SHARED, ("r",)), Api(ACME_API, ("r",), tenant="acme"), Api(GLOBEX_API, ("r",),
                                                                                          tenant="globex")
    assert [acme.sees_api(a) for a in (shared, own, other)] == [True, True, False]
    assert [acme.may_change_api(a) for a in (shared, own, other)] == [False, True, False]
    assert acme.may_assign("acme") and not acme.may_assign("globex") and not acme.may_assign(None)
    assert everyone.may_assign(None) and everyone.may_assign("globex")
    assert [grant_crosses_tenant("acme", a) for a in (shared, own, other)] == [False, False, True]
    assert grant_crosses_tenant(None, own)  # a client without tenant cannot hold a tenant's API


def test_tenant_admin_reads_only_its_tenant(root: Admin):
    acme = scoped(root, "acme")
    assert [c.client_id for c in acme.clients()] == ["acme-1"]
    assert {a.identifier for a in acme.apis()} == {SHARED, ACME_API}
    assert {g.client_id for g in acme.grants()} == {"acme-1"}
    for call in (lambda: acme.client("globex-1"), lambda: acme.secrets("globex-1"),
                 lambda: acme.grants("globex-1"), lambda: acme.api(GLOBEX_API),
                 lambda: acme.delete_client("globex-1"), lambda: acme.revoke_client_tokens("globex-1"),
                 lambda: acme.rotate_secret("globex-1", 0), lambda: acme.update_client("globex-1", name="x")):
        with pytest.raises(NotFound):
            call()
    assert root.store.load_client("globex-1") is not None


def test_tenant_admin_creates_only_inside_its_tenant(root: Admin):
    acme = scoped(root, "acme")
    client, _ = acme.create_client("new", [GrantSpec(SHARED, ("read",))])
    assert client.tenant == "acme"
    for tenant in ("globex", None):
        with pytest.raises(Forbidden):
            acme.create_client("x", [], tenant=tenant)
        with pytest.raises(Forbidden):
            acme.update_client("acme-1", tenant=tenant)
        with pytest.raises(Forbidden):
            acme.save_api("https://new.example", ["read"], tenant=tenant)
    with pytest.raises(ConfigError, match="unknown API"):
        acme.create_client("x", [GrantSpec(GLOBEX_API, ("read",))])
    with pytest.raises(Forbidden):
        acme.save_api(SHARED, ["read", "write"])
    with pytest.raises(Conflict):
        acme.save_api(GLOBEX_API, ["read"])
    with pytest.raises(Forbidden):
        acme.rotate_keys()
    with pytest.raises(Forbidden):
        acme.revoke_jti("some-jti")
    assert acme.save_api("https://new.example", ["read"])[0].tenant == "acme"


def test_global_admin_keeps_grants_inside_the_client_tenant(root: Admin):
    with pytest.raises(ConfigError, match="belongs to tenant globex"):
        root.create_client("x", [GrantSpec(GLOBEX_API, ("read",))], tenant="acme")
    with pytest.raises(ConfigError, match="change its grants"):
        root.update_client("acme-1", tenant="globex")
    assert root.store.load_client("acme-1").tenant == "acme"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="outside tenant"):
        root.save_api(ACME_API, ["read"], tenant="globex")
    assert root.update_client("acme-1", tenant="globex", grants=[GrantSpec(GLOBEX_API, ("read",))])
    assert root.store.load_client("acme-1").tenant == "globex"  # type: ignore[union-attr]


def test_tenant_admin_export_and_apply_stay_inside_its_tenant(root: Admin, tmp_path: Path):
    acme = scoped(root, "acme")
    exported = export_state(acme)
    assert "acme-1" in exported and ACME_API in exported
    assert "globex" not in exported and SHARED not in exported.replace(f'api = "{SHARED}"', "")
    path = tmp_path / "acme.toml"
    path.write_text(exported)
    assert apply_state(acme, parse_apply_file(str(path))).changes == []  # its own export is a no-op
    path.write_text(f"""
[[apis]]
identifier = "https://acme-two.example"
scopes = ["read"]

[[clients]]
client_id = "acme-2"
grants = [{{ api = "{SHARED}", scopes = ["read"] }}, {{ api = "https://acme-two.example", scopes = ["read"] }}]
""")
    result = apply_state(acme, parse_apply_file(str(path)), prune=True)
    assert result.changes == ["create api https://acme-two.example", "create client acme-2",
                              "delete client acme-1", f"delete api {ACME_API}"]
    assert root.store.load_client("acme-2").tenant == "acme"  # type: ignore[union-attr]
    assert root.store.load_api("https://acme-two.example").tenant == "acme"  # type: ignore[union-attr]
    assert root.store.load_client("globex-1") is not None and root.store.load_api(SHARED) is not None
    assert root.store.load_api(GLOBEX_API) is not None
    for text in ('[[clients]]\nclient_id = "globex-1"\n',  # another tenant's id: in use, not "update"
                 '[[clients]]\nclient_id = "x"\ntenant = "globex"\n',
                 f'[[clients]]\nclient_id = "x"\ngrants = [{{ api = "{GLOBEX_API}", scopes = ["read"] }}]\n'):
        path.write_text(text)
        before = (root.store.load_clients(), root.store.load_apis())
        with pytest.raises((Conflict, Forbidden, ConfigError)):
            apply_state(acme, parse_apply_file(str(path)))
        assert (root.store.load_clients(), root.store.load_apis()) == before


def test_global_export_writes_api_tenants_and_round_trips(root: Admin, tmp_path: Path):
    exported = export_state(root)
    assert 'tenant = "globex"' in exported
    path = tmp_path / "all.toml"
    path.write_text(exported)
    assert apply_state(root, parse_apply_file(str(path))).changes == []
