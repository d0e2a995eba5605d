"""Admin use cases and `warden apply` on the in-memory store (no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from warden.core.clock import FixedClock
from warden.errors import ConfigError, Conflict, NotFound
from warden.services.admin import Admin, GrantSpec, parse_grant_spec
from warden.services.apply import apply_state, parse_apply_file
from warden.services.audit import AuditSink
from warden.services.kek import KeyMaterial
from warden.storage.memory import MemoryStore

FILE = """
[[apis]]
identifier = "https://api.example"
scopes = ["read", "write"]
ttl = "10m"

[[apis]]
identifier = "https://other.example"
scopes = "list"

[[clients]]
client_id = "billing"
name = "Billing"
tenant = "acme"
grants = [{ api = "https://api.example", scopes = ["read"] }, { api = "https://other.example", scopes = ["list"] }]

[[clients]]
client_id = "reports"
enabled = false
grants = [{ api = "https://api.example", scopes = ["read", "write"] }]
"""


@pytest.fixture
def admin() -> Admin:
    return Admin(MemoryStore(), KeyMaterial.from_kek(b"k" * 32), FixedClock(), AuditSink())


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "warden.toml"
    path.write_text(text)
    return str(path)


def test_apply_creates_then_is_idempotent(admin: Admin, tmp_path: Path):
    path = write(tmp_path, FILE)
    first = apply_state(admin, parse_apply_file(path))
    assert first.changes == ["create api https://api.example", "create api https://other.example",
                             "create client billing", "create client reports"]
    assert {s.client_id for s in first.secrets} == {"billing", "reports"}
    seq = admin.store.latest_change()
    second = apply_state(admin, parse_apply_file(path))
    assert second.changes == [] and second.secrets == []
    assert admin.store.latest_change() == seq  # nothing written at all
    billing = admin.store.load_client("billing")
    assert billing is not None and billing.tenant == "acme"
    assert [g.api for g in admin.store.load_grants("billing")] == ["https://api.example", "https://other.example"]
    assert admin.store.load_client("reports").enabled is False  # type: ignore[union-attr]


def test_apply_updates_and_prunes(admin: Admin, tmp_path: Path):
    apply_state(admin, parse_apply_file(write(tmp_path, FILE)))
    admin.create_client("stray", [GrantSpec("https://api.example", ("read",))], client_id="stray")
    changed = FILE.replace('tenant = "acme"\n', "").replace('scopes = ["read", "write"] }]', 'scopes = ["read"] }]')
    result = apply_state(admin, parse_apply_file(write(tmp_path, changed)), prune=True)
    assert [c.split(" (")[0] for c in result.changes] == ["update client billing", "update client reports",
                                                          "delete client stray"]
    assert admin.store.load_client("billing").tenant is None  # type: ignore[union-attr]
    assert apply_state(admin, parse_apply_file(write(tmp_path, changed)), prune=True).changes == []


def test_dry_run_changes_nothing(admin: Admin, tmp_path: Path):
    result = apply_state(admin, parse_apply_file(write(tmp_path, FILE)), dry_run=True)
    assert len(result.changes) == 4 and admin.store.latest_change() == 0


@pytest.mark.parametrize("text,message", [
    ("[[apis]]\nidentifier='https://a.example'\nscopes=['r']\nextra=1", "unknown key 'extra'"),
    ("[[apis]]\nscopes=['r']", "identifier is required"),
    ("[[apis]]\nidentifier='nope'\nscopes=['r']", "absolute URI"),
    ("[[apis]]\nidentifier='https://a.example'\nscopes=['read', 'warden:admin']", "reserved"),
    ("[[clients]]\nname='x'", "client_id is required"),
    ("[[clients]]\nclient_id='a'\ngrants=[{api='https://missing.example', scopes=['r']}]", "unknown API"),
    ("[[clients]]\nclient_id='a'\nenabled='yes'", "enabled"),
    ("[[clients]]\nclient_id='a'\n[[clients]]\nclient_id='a'", "appears twice"),
    ("[unknown]\n", "unknown key"),
    ("not toml = = =", "not valid TOML"),
])
def test_invalid_files_are_refused_before_any_write(admin: Admin, tmp_path: Path, text: str, message: str):
    with pytest.raises(ConfigError, match=message):
        apply_state(admin, parse_apply_file(write(tmp_path, text)))
    assert admin.store.latest_change() == 0


def test_grant_spec_parsing():
    assert parse_grant_spec("https://a.example/?x=1=read,write") == GrantSpec("https://a.example/?x=1",
                                                                             ("read", "write"))
    for bad in ("noequals", "https://a.example=", "=read"):
        with pytest.raises(ConfigError):
            parse_grant_spec(bad)


def test_admin_rules(admin: Admin):
    admin.save_api("https://api.example", ["read", "write"])
    with pytest.raises(ConfigError, match="defines no scope"):
        admin.create_client("x", [GrantSpec("https://api.example", ("admin",))])
    with pytest.raises(ConfigError, match="granted twice"):
        admin.create_client("x", [GrantSpec("https://api.example", ("read",)),
                                  GrantSpec("https://api.example", ("write",))])
    with pytest.raises(ConfigError, match=r"not a known|unknown auth method"):
        admin.create_client("x", [], auth_method="client_secret_jwt")
    with pytest.raises(ConfigError, match="tls-subject-dn"):
        admin.create_client("x", [], auth_method="tls_client_auth")
    with pytest.raises(ConfigError, match="needs --jwks"):
        admin.create_client("x", [], auth_method="private_key_jwt")
    client, secret = admin.create_client("x", [GrantSpec("https://api.example", ("write",))])
    assert secret is not None and secret.secret not in repr(secret)
    with pytest.raises(ConfigError, match="still granted"):
        admin.save_api("https://api.example", ["read"])  # would orphan a granted scope
    with pytest.raises(Conflict):
        admin.delete_api("https://api.example")
    with pytest.raises(NotFound):
        admin.client("missing")
    admin.delete_client(client.client_id)
    admin.delete_api("https://api.example")


def test_secret_hash_never_equals_plaintext(admin: Admin):
    admin.save_api("https://api.example", ["read"])
    client, secret = admin.create_client("x", [GrantSpec("https://api.example", ("read",))])
    stored = admin.store.load_secrets(client.client_id)[0]
    assert secret is not None
    assert secret.secret.encode() not in stored.hash and len(stored.hash) == 32
    assert stored.hint == secret.secret[-4:]
