"""Signing keys in a PKCS#11 token (an HSM, a cloud HSM's PKCS#11 library, SoftHSM2).

Keys are generated in the token (C_GenerateKeyPair) as token objects whose private half
is `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`, so no call can read it out; the kid is
both `CKA_ID` and `CKA_LABEL`. Warden stores only the public JWK and the ref `p11:` +
token label. Mechanisms: ES256 signs the SHA-256 digest with `CKM_ECDSA` on P-256 (the
token answers R || S, as RFC 7518 §3.4 wants), RS256 uses `CKM_SHA256_RSA_PKCS`, EdDSA
`CKM_EDDSA` on Ed25519.

Each process keeps one logged-in session per token (PKCS#11 logs in per application, not
per session). Every call into a PKCS#11 library takes that library's process-wide lock
(`library_lock`): python-pkcs11 initialises libraries without locking callbacks
(`C_Initialize(NULL)`), which tells a library such as SoftHSM2 that no two threads call it
at once. So generating a key (in the maintenance thread, once per rotation) delays the
signatures of that process while it runs: 70-300 ms for RSA-2048 in SoftHSM2, 10-50 ms for
EdDSA and ES256. When the token fails (it was unplugged, the HSM restarted) the session is reopened
once; if that fails too the caller gets `TemporarilyUnavailable` (503, never a token from
another key, F18). The PIN is a `Secret` and appears in no message.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from warden.errors import ConfigError
from warden.jose import PublicKey, public_jwk
from warden.protocol.errors import TemporarilyUnavailable
from warden.secret import Secret
from warden.services.key_backends import GeneratedKey, SignFunction
from warden.settings import Pkcs11Settings

__all__ = ["Pkcs11Keys", "library_lock"]

log = logging.getLogger("warden.server")
_REF_PREFIX = b"p11:"
_P256_OID = "secp256r1"
_ED25519_OID = "1.3.101.112"
_EXTRA = "pip install 'warden-m2m[hsm]'"


@dataclass
class _Session:
    """The process's session with one token."""

    session: Any = None


_SESSIONS: dict[tuple[str, str], _Session] = {}  # (module, token label)
_LIBRARY_LOCKS: dict[str, threading.RLock] = {}
_SESSIONS_LOCK = threading.Lock()


def library_lock(module: str) -> threading.RLock:
    """The lock every call into the PKCS#11 library at `module` must hold, in this process."""
    with _SESSIONS_LOCK:
        return _LIBRARY_LOCKS.setdefault(module, threading.RLock())


def _pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError:
        raise ConfigError(f"keys.backend = \"pkcs11\" needs the hsm extra: {_EXTRA}") from None
    return pkcs11


def _der_octets(value: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING around the point (PKCS#11 v2.40 §2.3.3); some tokens send it bare."""
    if len(value) >= 2 and value[0] == 0x04 and value[1] == len(value) - 2:
        return value[2:]
    return value


class Pkcs11Keys:
    """The `pkcs11` key backend (`services.key_backends.KeyBackend`)."""

    name = "pkcs11"

    def __init__(self, settings: Pkcs11Settings) -> None:
        self._module = settings.module
        self._label = settings.token_label
        self._pin = settings.pin
        self._pin_file = settings.pin_file
        self._rsa_bits = settings.rsa_bits
        self._ref = _REF_PREFIX + settings.token_label.encode("utf-8")

    def __repr__(self) -> str:
        return f"Pkcs11Keys(module={self._module!r}, token_label={self._label!r})"

    # the session ---------------------------------------------------------------------------------
    def _shared(self) -> _Session:
        with _SESSIONS_LOCK:
            return _SESSIONS.setdefault((self._module, self._label), _Session())

    def _user_pin(self) -> str:
        if self._pin is not None:
            return self._pin.reveal()
        return Secret.from_file(self._pin_file).reveal()

    def _open(self) -> Any:
        p11 = _pkcs11()
        where = f"PKCS#11 token {self._label!r}"
        try:
            lib = p11.lib(self._module)
        except p11.exceptions.PKCS11Error:
            raise ConfigError(f"setting keys.pkcs11.module: cannot load {self._module}") from None
        try:
            token = lib.get_token(token_label=self._label)
        except p11.exceptions.NoSuchToken:
            raise ConfigError(f"setting keys.pkcs11.token_label: no {where} in {self._module}") from None
        except p11.exceptions.MultipleTokensReturned:
            raise ConfigError(f"setting keys.pkcs11.token_label: several tokens are labelled {self._label!r}") \
                from None
        try:
            return token.open(rw=True, user_pin=self._user_pin())
        except p11.exceptions.UserAlreadyLoggedIn:
            return token.open(rw=True)  # this process is logged in already (another session)
        except (p11.exceptions.PinIncorrect, p11.exceptions.PinInvalid, p11.exceptions.PinLenRange):
            raise ConfigError(f"setting keys.pkcs11.pin: {where} refused the PIN") from None
        except p11.exceptions.PinLocked:
            raise ConfigError(f"{where}: the user PIN is locked") from None
        except p11.exceptions.PKCS11Error as exc:
            raise TemporarilyUnavailable("signing keys unavailable", reason="signing_key_unavailable",
                                         retry_after=1) from exc

    def _run(self, operation: Any) -> Any:
        """Run `operation(session)` under the library's lock; reopen the session once if the token failed."""
        p11 = _pkcs11()
        shared = self._shared()
        with library_lock(self._module):
            for attempt in (0, 1):
                if shared.session is None:
                    shared.session = self._open()
                try:
                    return operation(shared.session)
                except (p11.exceptions.SessionClosed, p11.exceptions.SessionHandleInvalid,
                        p11.exceptions.DeviceRemoved, p11.exceptions.DeviceError, p11.exceptions.TokenNotPresent,
                        p11.exceptions.UserNotLoggedIn, p11.exceptions.GeneralError) as exc:
                    shared.session = None
                    if attempt:
                        raise TemporarilyUnavailable("signing keys unavailable", reason="signing_key_unavailable",
                                                     retry_after=1) from exc
            raise AssertionError("unreachable")  # pragma: no cover

    def _find(self, session: Any, kid: str, private: bool) -> Any:
        p11 = _pkcs11()
        cls = p11.ObjectClass.PRIVATE_KEY if private else p11.ObjectClass.PUBLIC_KEY
        found = list(session.get_objects({p11.Attribute.CLASS: cls, p11.Attribute.ID: kid.encode("utf-8")}))
        if len(found) != 1:
            raise ConfigError(f"signing key {kid}: {'no' if not found else 'more than one'} "
                              f"{'private' if private else 'public'} key with this id in PKCS#11 token "
                              f"{self._label!r}")
        return found[0]

    # KeyBackend ----------------------------------------------------------------------------------
    def handles(self, ref: bytes) -> bool:
        return ref == self._ref

    def generate(self, kid: str, alg: str) -> GeneratedKey:
        p11 = _pkcs11()
        from pkcs11.util.ec import encode_named_curve_parameters

        a = p11.Attribute
        ident = kid.encode("utf-8")
        private = {a.TOKEN: True, a.PRIVATE: True, a.SENSITIVE: True, a.EXTRACTABLE: False, a.SIGN: True,
                   a.DECRYPT: False, a.UNWRAP: False, a.DERIVE: False, a.LABEL: kid, a.ID: ident}
        public = {a.TOKEN: True, a.VERIFY: True, a.ENCRYPT: False, a.WRAP: False, a.LABEL: kid, a.ID: ident}

        def make(session: Any) -> Any:
            if alg == "ES256":
                params = session.create_domain_parameters(
                    p11.KeyType.EC, {a.EC_PARAMS: encode_named_curve_parameters(_P256_OID)}, local=True)
                pub, _ = params.generate_keypair(store=True, public_template=public, private_template=private)
            elif alg == "EdDSA":
                params = session.create_domain_parameters(
                    p11.KeyType.EC_EDWARDS, {a.EC_PARAMS: encode_named_curve_parameters(_ED25519_OID)}, local=True)
                pub, _ = params.generate_keypair(store=True, public_template=public, private_template=private)
            elif alg == "RS256":
                public[a.PUBLIC_EXPONENT] = b"\x01\x00\x01"
                pub, _ = session.generate_keypair(p11.KeyType.RSA, self._rsa_bits, store=True,
                                                  public_template=public, private_template=private)
            else:
                raise ConfigError(f"keys.backend = \"pkcs11\" makes ES256, RS256 and EdDSA keys, not {alg}")
            return self._jwk(pub, kid, alg)

        return GeneratedKey(self._run(make), self._ref)

    def public_jwk(self, kid: str, alg: str, ref: bytes) -> dict[str, str]:
        return dict(self._run(lambda session: self._jwk(self._find(session, kid, private=False), kid, alg)))

    def sign(self, kid: str, alg: str, ref: bytes) -> SignFunction:
        p11 = _pkcs11()
        mechanism = {"ES256": p11.Mechanism.ECDSA, "RS256": p11.Mechanism.SHA256_RSA_PKCS,
                     "EdDSA": p11.Mechanism.EDDSA}.get(alg)
        if mechanism is None:
            raise ConfigError(f"signing key {kid}: the pkcs11 backend does not sign {alg}")
        prehash = alg == "ES256"  # CKM_ECDSA signs a digest; the others hash inside the token
        handle: list[Any] = [self._run(lambda session: self._find(session, kid, private=True))]

        def sign_input(data: bytes) -> bytes:
            message = hashlib.sha256(data).digest() if prehash else data

            def op(session: Any) -> bytes:
                if handle[0] is None:  # the session was reopened: object handles are per session
                    handle[0] = self._find(session, kid, private=True)
                try:
                    return bytes(handle[0].sign(message, mechanism=mechanism))
                except (p11.exceptions.ObjectHandleInvalid, p11.exceptions.KeyHandleInvalid,
                        p11.exceptions.SessionClosed, p11.exceptions.SessionHandleInvalid):
                    handle[0] = None
                    raise p11.exceptions.SessionClosed() from None

            try:
                return bytes(self._run(op))
            except (p11.exceptions.PKCS11Error, ConfigError) as exc:  # a failing token, or the key gone from it
                log.error("signing key %s: the PKCS#11 token cannot sign (%s)", kid, type(exc).__name__)
                raise TemporarilyUnavailable("signing key unavailable", reason="signing_key_unavailable",
                                             retry_after=1) from exc

        return sign_input

    def destroy(self, kid: str, ref: bytes) -> None:
        p11 = _pkcs11()

        def op(session: Any) -> None:
            for obj in list(session.get_objects({p11.Attribute.ID: kid.encode("utf-8")})):
                obj.destroy()

        self._run(op)

    # helpers -------------------------------------------------------------------------------------
    def _jwk(self, pub: Any, kid: str, alg: str) -> dict[str, str]:
        a = _pkcs11().Attribute
        key: PublicKey
        if alg == "ES256":
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _der_octets(bytes(pub[a.EC_POINT])))
        elif alg == "EdDSA":
            key = ed25519.Ed25519PublicKey.from_public_bytes(_der_octets(bytes(pub[a.EC_POINT])))
        else:
            numbers = rsa.RSAPublicNumbers(int.from_bytes(bytes(pub[a.PUBLIC_EXPONENT]), "big"),
                                           int.from_bytes(bytes(pub[a.MODULUS]), "big"))
            key = numbers.public_key()
        return public_jwk(key, kid=kid, alg=alg)
