"""The registry cache follows the change log; the keyring applies the key lifecycle."""

from __future__ import annotations

from warden.core.clock import FixedClock
from warden.core.keys import KeyState
from warden.services.admin import Admin, GrantSpec
from warden.services.audit import AuditSink
from warden.services.kek import KeyMaterial
from warden.services.keyring import Keyring
from warden.services.registry import Registry
from warden.storage.memory import MemoryStore

MATERIAL = KeyMaterial.from_kek(b"k" * 32)


def setup() -> tuple[MemoryStore, Admin, Registry, FixedClock]:
    store, clock = MemoryStore(), FixedClock()
    admin = Admin(store, MATERIAL, clock, AuditSink())
    Keyring(store, MATERIAL, clock, AuditSink()).ensure_keys(["ES256"])
    registry = Registry(store, MATERIAL)
    registry.load(clock.now())
    return store, admin, registry, clock


def test_registry_applies_changes_incrementally():
    _store, admin, registry, clock = setup()
    admin.save_api("https://api.example", ["read"])
    client, _ = admin.create_client("x", [GrantSpec("https://api.example", ("read",))])
    assert client.client_id not in registry.clients
    assert registry.refresh(clock.now()) == 2
    assert registry.clients[client.client_id].grants[0].api == "https://api.example"
    assert registry.refresh(clock.now()) == 0  # nothing applied twice
    admin.update_client(client.client_id, enabled=False)
    registry.refresh(clock.now())
    assert registry.clients[client.client_id].client.enabled is False
    admin.delete_client(client.client_id)
    registry.refresh(clock.now())
    assert client.client_id not in registry.clients


def test_registry_loads_late_committed_changes_it_skipped():
    # PostgreSQL can commit a lower sequence number after a higher one has been read.
    _store, admin, registry, clock = setup()
    admin.save_api("https://a.example", ["read"])
    registry.refresh(clock.now())
    registry._applied.remove(registry.seq)  # pretend that change had not been visible yet
    assert registry.refresh(clock.now()) == 1


def test_keyring_rotation_and_signers():
    store, admin, registry, clock = setup()
    active = registry.signers["ES256"].kid
    nxt = next(k.kid for k in store.load_keys() if k.state is KeyState.NEXT)
    assert nxt in {k["kid"] for k in registry.jwks["keys"]}  # published before it signs
    assert admin.rotate_keys(["ES256"]) == [nxt]
    registry.refresh(clock.now())
    assert registry.signers["ES256"].kid == nxt
    states = {k.kid: k.state for k in store.load_keys() if k.alg == "ES256"}
    assert states[active] is KeyState.RETIRED and list(states.values()).count(KeyState.NEXT) == 1
    assert active in {k["kid"] for k in registry.jwks["keys"]}


def test_keyring_maintenance_removes_expired_retired_keys_and_duplicate_actives():
    store, _admin, registry, clock = setup()
    keyring = Keyring(store, MATERIAL, clock, AuditSink())
    old = registry.signers["ES256"].kid
    keyring.rotate(["ES256"])
    clock.advance(900 + 61)
    keyring.maintain(interval=10**9, publish_lead=0, max_token_ttl=900)
    assert old not in {k.kid for k in store.load_keys()}
    # two processes racing at first start may both create an active key: one is retired
    keyring._create("ES256", KeyState.ACTIVE)
    keyring.maintain(interval=10**9, publish_lead=0, max_token_ttl=900)
    assert [k.state for k in store.load_keys() if k.alg == "ES256"].count(KeyState.ACTIVE) == 1


def test_scheduled_rotation_happens_after_interval():
    store, _admin, registry, clock = setup()
    keyring = Keyring(store, MATERIAL, clock, AuditSink())
    before = registry.signers["ES256"].kid
    clock.advance(3600)
    keyring.maintain(interval=1800, publish_lead=600, max_token_ttl=900)
    registry.refresh(clock.now())
    assert registry.signers["ES256"].kid != before


def test_private_keys_are_encrypted_at_rest():
    store, *_ = setup()
    from cryptography.hazmat.primitives import serialization

    for key in store.load_keys():
        private = MATERIAL.decrypt_private_key(key.kid, key.encrypted_private_key)
        der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        assert der not in key.encrypted_private_key
        try:
            KeyMaterial.from_kek(b"x" * 32).decrypt_private_key(key.kid, key.encrypted_private_key)
        except Exception as exc:
            assert "key-encryption key differs" in str(exc)
        else:
            raise AssertionError("decrypted with the wrong KEK")
