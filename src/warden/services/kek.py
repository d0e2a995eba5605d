"""The key-encryption key (KEK) and what is derived from it.

Private signing keys are encrypted at rest with AES-256-GCM under a key derived
from the KEK, with the key id as associated data so ciphertexts cannot be
swapped between rows. Client-secret hashes are keyed with a second derived
value (the pepper), so a copy of the database alone cannot be used to test
guesses. The KEK comes from settings (`WARDEN_KEYS_ENCRYPTION_KEY`, base64url of
32 bytes; required when several nodes share one database) or from
`<data_dir>/kek`, created with mode 0600 at first start.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from warden.errors import ConfigError, StorageError
from warden.jose import PrivateKey

__all__ = ["KeyMaterial", "generate_kek", "load_kek"]

_VERSION = b"w1"


def generate_kek() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


def _decode(value: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(value.strip() + "=" * (-len(value.strip()) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError("setting keys.encryption_key: expected base64url of 32 random bytes "
                          "(generate one with `python -c 'import secrets,base64;"
                          "print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())'`)")
    return raw


def _derive(kek: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(kek)


@dataclass(frozen=True)
class KeyMaterial:
    """Keys derived from the KEK. `repr` never shows them."""

    _key_encryption: bytes
    pepper: bytes

    def __repr__(self) -> str:
        return "KeyMaterial(<hidden>)"

    @classmethod
    def from_kek(cls, kek: bytes) -> KeyMaterial:
        return cls(_derive(kek, b"warden/v1/private-key-encryption"), _derive(kek, b"warden/v1/secret-hash"))

    def derive(self, purpose: bytes) -> bytes:
        """A further 32-byte key for `purpose`, the same in every process sharing the KEK."""
        return _derive(self._key_encryption + self.pepper, purpose)

    def encrypt_private_key(self, kid: str, key: PrivateKey) -> bytes:
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        nonce = os.urandom(12)
        return _VERSION + nonce + AESGCM(self._key_encryption).encrypt(nonce, der, kid.encode())

    def decrypt_private_key(self, kid: str, blob: bytes) -> PrivateKey:
        if not blob.startswith(_VERSION):
            raise StorageError(f"signing key {kid}: unknown encryption format")
        nonce, ciphertext = blob[2:14], blob[14:]
        try:
            der = AESGCM(self._key_encryption).decrypt(nonce, ciphertext, kid.encode())
        except InvalidTag:
            raise ConfigError(f"signing key {kid} cannot be decrypted: the key-encryption key differs "
                              "from the one that encrypted it (set keys.encryption_key to the original)") from None
        key = serialization.load_der_private_key(der, password=None)
        return key  # type: ignore[return-value]


def load_kek(configured: str | None, data_dir: str) -> KeyMaterial:
    """Return key material from the configured KEK, or from `<data_dir>/kek` (created if absent)."""
    if configured:
        return KeyMaterial.from_kek(_decode(configured))
    path = os.path.join(data_dir, "kek")
    try:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(generate_kek() + "\n")
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(f"key-encryption key file {path} must not be readable by others (chmod 600)")
        with open(path, encoding="ascii") as fh:
            value = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot use key-encryption key file {path}: {exc.strerror}") from None
    return KeyMaterial.from_kek(_decode(value))
