"""Where private signing keys live: the seam between the keyring and whatever holds the keys.

A `KeyBackend` makes a key for a (kid, alg) and gives back its public JWK and a `ref`,
the opaque bytes the store keeps in the key row (`SigningKey.encrypted_private_key`);
later it turns a (kid, alg, ref) into a `sign` function over JWS signing inputs. The
lifecycle (next -> active -> retired -> removed, `core.keys`) is the keyring's and
does not depend on the backend; so do the JWKS, rotation and pre-publication.

- `database` (`DatabaseKeys`): the private key is PKCS#8, AES-256-GCM-encrypted under
  the key-encryption key (`services.kek`); its ref starts with `w1`.
- `pkcs11` (`services.pkcs11_keys.Pkcs11Keys`): the key is generated in a PKCS#11 token
  and never leaves it; its ref is `p11:` + the token label.

A cloud KMS is one more class with these five methods and a ref prefix of its own.
Every stored key is used by the backend whose ref it carries (`KeyBackends.for_ref`),
so keys made before `keys.backend` changed keep signing until they rotate out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from warden.errors import ConfigError
from warden.jose import ALGORITHMS, generate_private_key, public_jwk
from warden.services.kek import KeyMaterial
from warden.settings import KeySettings

__all__ = ["DatabaseKeys", "GeneratedKey", "KeyBackend", "KeyBackends", "SignFunction", "open_key_backends"]

SignFunction = Callable[[bytes], bytes]
"""JWS signing input -> JWS Signature octets (RFC 7515 §5.1) under the key's one algorithm."""


@dataclass(frozen=True, repr=False)
class GeneratedKey:
    public_jwk: dict[str, str]
    ref: bytes  # what the store keeps: a ciphertext, or where the key is

    def __repr__(self) -> str:
        return f"GeneratedKey(kid={self.public_jwk.get('kid')!r})"


class KeyBackend(Protocol):
    """One place private keys can live. Methods raise ConfigError when the backend cannot be used
    at all (a missing module, a wrong PIN) and TemporarilyUnavailable when it fails for now."""

    name: str

    def handles(self, ref: bytes) -> bool:
        """Whether a stored key's `ref` is one of this backend's."""
        ...

    def generate(self, kid: str, alg: str) -> GeneratedKey:
        """Make a new private key for `alg`, kept by this backend under `kid`."""
        ...

    def public_jwk(self, kid: str, alg: str, ref: bytes) -> dict[str, str]:
        """The public JWK of a key this backend holds, read from the backend itself."""
        ...

    def sign(self, kid: str, alg: str, ref: bytes) -> SignFunction:
        """A function signing with the key; resolved once per key load, called once per token."""
        ...

    def destroy(self, kid: str, ref: bytes) -> None:
        """Forget the private key (the key was removed from the store); a missing key is no error."""
        ...


class DatabaseKeys:
    """Private keys in the store, encrypted under the key-encryption key."""

    name = "database"

    def __init__(self, material: KeyMaterial) -> None:
        self._material = material

    def handles(self, ref: bytes) -> bool:
        return ref.startswith(b"w1")

    def generate(self, kid: str, alg: str) -> GeneratedKey:
        private = generate_private_key(alg)
        return GeneratedKey(public_jwk(private, kid=kid, alg=alg), self._material.encrypt_private_key(kid, private))

    def public_jwk(self, kid: str, alg: str, ref: bytes) -> dict[str, str]:
        return public_jwk(self._material.decrypt_private_key(kid, ref), kid=kid, alg=alg)

    def sign(self, kid: str, alg: str, ref: bytes) -> SignFunction:
        key = self._material.decrypt_private_key(kid, ref)
        algorithm = ALGORITHMS.get(alg)
        if algorithm is None or not algorithm.key_matches(key):
            raise ConfigError(f"signing key {kid}: the stored key does not match {alg}")  # RFC 8725 §3.1
        return partial(algorithm.sign, key)

    def destroy(self, kid: str, ref: bytes) -> None:
        return None  # the ciphertext goes with the row


@dataclass(frozen=True)
class KeyBackends:
    """The backend that makes new keys (`keys.backend`), and every backend that can use stored ones."""

    primary: KeyBackend
    others: tuple[KeyBackend, ...] = ()

    def for_ref(self, kid: str, ref: bytes) -> KeyBackend:
        for backend in (self.primary, *self.others):
            if backend.handles(ref):
                return backend
        if ref.startswith(b"p11:"):
            raise ConfigError(f"signing key {kid} is held in a PKCS#11 token: set keys.backend = \"pkcs11\" "
                              "and [keys.pkcs11] to use it")
        raise ConfigError(f"signing key {kid}: no key backend holds it (unknown format)")

    def all(self) -> Iterable[KeyBackend]:
        return (self.primary, *self.others)


def open_key_backends(keys: KeySettings, material: KeyMaterial) -> KeyBackends:
    """The backends for these settings. Opening a PKCS#11 token is deferred to its first use."""
    database = DatabaseKeys(material)
    if keys.backend == "pkcs11":
        from warden.services.pkcs11_keys import Pkcs11Keys

        return KeyBackends(Pkcs11Keys(keys.pkcs11), (database,))
    return KeyBackends(database)
