"""The key-backend seam: every stored key is used by the backend its ref names, new keys come from the
configured one, and a backend's own public key must be the published one."""

from __future__ import annotations

import pytest

from warden.core.clock import FixedClock
from warden.errors import ConfigError
from warden.jose import ALGORITHMS, load_public_jwk
from warden.services.audit import AuditSink
from warden.services.kek import KeyMaterial
from warden.services.key_backends import DatabaseKeys, GeneratedKey, KeyBackends
from warden.services.keyring import Keyring, check_backend_keys, signers_from_keys
from warden.storage.memory import MemoryStore

MATERIAL = KeyMaterial.from_kek(b"k" * 32)


class FakeKms:
    """A stand-in remote backend: keys by kid in a dict the keyring never sees into."""

    name = "fake-kms"

    def __init__(self) -> None:
        self.keys: dict[str, object] = {}
        self.database = DatabaseKeys(MATERIAL)

    def handles(self, ref: bytes) -> bool:
        return ref == b"kms:fake"

    def generate(self, kid: str, alg: str) -> GeneratedKey:
        made = self.database.generate(kid, alg)
        self.keys[kid] = made.ref
        return GeneratedKey(made.public_jwk, b"kms:fake")

    def public_jwk(self, kid: str, alg: str, ref: bytes) -> dict[str, str]:
        return self.database.public_jwk(kid, alg, self.keys[kid])  # type: ignore[arg-type]

    def sign(self, kid: str, alg: str, ref: bytes):  # type: ignore[no-untyped-def]
        return self.database.sign(kid, alg, self.keys[kid])  # type: ignore[arg-type]

    def destroy(self, kid: str, ref: bytes) -> None:
        self.keys.pop(kid, None)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_database_backend_signs_what_its_public_jwk_verifies(alg):
    backend = DatabaseKeys(MATERIAL)
    made = backend.generate("k1", alg)
    assert made.ref.startswith(b"w1") and backend.handles(made.ref)
    assert backend.public_jwk("k1", alg, made.ref) == made.public_jwk
    signature = backend.sign("k1", alg, made.ref)(b"input")
    assert ALGORITHMS[alg].verify(load_public_jwk(made.public_jwk), b"input", signature)


def test_new_keys_come_from_the_primary_and_old_ones_keep_signing_from_theirs():
    store, clock, kms = MemoryStore(), FixedClock(), FakeKms()
    Keyring(store, MATERIAL, clock, AuditSink()).ensure_keys(["ES256"])  # database keys first
    both = KeyBackends(kms, (DatabaseKeys(MATERIAL),))
    keyring = Keyring(store, MATERIAL, clock, AuditSink(), both)
    keyring.rotate(["ES256"])  # the database's next key signs; the new next is the KMS's
    refs = {k.state.value: k.encrypted_private_key for k in store.load_keys()}
    assert refs["active"].startswith(b"w1") and refs["next"] == b"kms:fake"
    assert signers_from_keys(store.load_keys(), both)["ES256"].compact.sign(b"{}")
    keyring.rotate(["ES256"])
    active = next(k for k in store.load_keys() if k.state.value == "active")
    assert active.encrypted_private_key == b"kms:fake" and active.kid in kms.keys
    signers_from_keys(store.load_keys(), both)["ES256"].compact.sign(b"{}")
    check_backend_keys(store.load_keys(), both)


def test_a_key_no_configured_backend_holds_is_a_config_error_naming_the_setting():
    with pytest.raises(ConfigError, match=r'keys\.backend = "pkcs11"'):
        KeyBackends(DatabaseKeys(MATERIAL)).for_ref("es256-1", b"p11:warden")
    with pytest.raises(ConfigError, match="unknown format"):
        KeyBackends(DatabaseKeys(MATERIAL)).for_ref("es256-1", b"zz")


def test_a_backend_holding_another_key_than_the_published_one_is_refused():
    store, clock, kms = MemoryStore(), FixedClock(), FakeKms()
    backends = KeyBackends(kms)
    Keyring(store, MATERIAL, clock, AuditSink(), backends).ensure_keys(["ES256"])
    replaced = next(iter(kms.keys))
    kms.keys[replaced] = DatabaseKeys(MATERIAL).generate(replaced, "ES256").ref  # the token was re-initialised
    with pytest.raises(ConfigError, match="different key"):
        check_backend_keys(store.load_keys(), backends)
