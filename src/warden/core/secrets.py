"""Client secrets: identifiable format, keyed hash at rest, constant-time verification.

Format: ``wsec_`` + 36 base62 characters of CSPRNG entropy (214 bits, above the
2^-160 guessing bound of RFC 6749 §10.10) + 6 base62 characters of CRC32 over
what precedes them, so leak scanners can recognise a Warden secret and reject
typos offline. Dynamic registration's bearer credentials have the same shape under their own
prefixes (SECURITY.md §4: one prefix per kind): ``wiat_`` for initial access tokens and ``wrat_``
for registration access tokens (RFC 7591 §3, RFC 7592 §1). Secrets are high-entropy, so a keyed fast hash (HMAC-SHA256 with
a server-held pepper) is as strong as a slow password hash and keeps the token
path fast; the plaintext is never stored.
"""

from __future__ import annotations

import hmac
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "CREDENTIAL_PREFIXES",
    "INITIAL_ACCESS_TOKEN_PREFIX",
    "REGISTRATION_ACCESS_TOKEN_PREFIX",
    "SECRET_PREFIX",
    "ClientSecret",
    "SecretState",
    "generate_secret",
    "has_valid_checksum",
    "hash_secret",
    "secret_state",
]

SECRET_PREFIX = "wsec_"
INITIAL_ACCESS_TOKEN_PREFIX = "wiat_"
REGISTRATION_ACCESS_TOKEN_PREFIX = "wrat_"
CREDENTIAL_PREFIXES = (SECRET_PREFIX, INITIAL_ACCESS_TOKEN_PREFIX, REGISTRATION_ACCESS_TOKEN_PREFIX)  # same length
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ENTROPY_CHARS = 36
_CHECKSUM_CHARS = 6
SECRET_LENGTH = len(SECRET_PREFIX) + _ENTROPY_CHARS + _CHECKSUM_CHARS


class SecretState(str, Enum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class ClientSecret:
    secret_id: str
    client_id: str
    hash: bytes
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None
    hint: str = ""  # last four characters, for operators telling secrets apart


def _base62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECKSUM_CHARS)


def generate_secret(random_bytes: Callable[[int], bytes], prefix: str = SECRET_PREFIX) -> str:
    """Return a new secret; `random_bytes` is a CSPRNG such as `secrets.token_bytes`; `prefix` one of
    `CREDENTIAL_PREFIXES`."""
    chars: list[str] = []
    while len(chars) < _ENTROPY_CHARS:
        for byte in random_bytes(64):
            if byte < 248:  # 248 = 4 * 62: reject to keep the distribution uniform
                chars.append(_ALPHABET[byte % 62])
                if len(chars) == _ENTROPY_CHARS:
                    break
    body = prefix + "".join(chars)
    return body + _checksum(body)


def has_valid_checksum(secret: str, prefix: str = SECRET_PREFIX) -> bool:
    """True if `secret` has Warden's shape and checksum (a cheap pre-check, not authentication)."""
    if len(secret) != SECRET_LENGTH or not secret.startswith(prefix):
        return False
    body, check = secret[:-_CHECKSUM_CHARS], secret[-_CHECKSUM_CHARS:]
    return hmac.compare_digest(_checksum(body), check)


def hash_secret(pepper: bytes, secret: str) -> bytes:
    # One-shot HMAC (OpenSSL in C): the same digest as hmac.new(...).digest(), without the object.
    return hmac.digest(pepper, secret.encode("utf-8", "surrogatepass"), "sha256")


def secret_state(secret: ClientSecret, now: float) -> SecretState:
    if secret.revoked_at is not None:
        return SecretState.REVOKED
    if secret.expires_at is not None and secret.expires_at <= now:
        return SecretState.EXPIRED
    return SecretState.ACTIVE
