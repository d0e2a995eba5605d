"""Client authentication at the token endpoint, one registry entry per method, keyed by wire name.

- `client_secret_basic` (RFC 6749 §2.3.1): HTTP Basic over the form-urlencoded id and secret.
- `client_secret_post` (RFC 6749 §2.3.1): `client_id` and `client_secret` in the body.
- `private_key_jwt` (RFC 7523 §2.2, §3; RFC 7521 §4.2): a signed assertion whose `aud` is
  the issuer identifier, never the token endpoint URL (audience injection, T61), with
  `typ: client-authentication+jwt`, a fresh `jti` and a lifetime of 60 seconds. A workload
  identity sends, in the same parameters, a token its platform issued (a Kubernetes
  service-account token, a CI job's OIDC token), read afresh for every request.
- `tls_client_auth`, `self_signed_tls_client_auth` (RFC 8705 §2): the certificate in the
  caller's TLS context authenticates; the body names `client_id`.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote_plus

from warden.client._keys import SigningKey
from warden.secret import Secret

__all__ = [
    "ASSERTION_LIFETIME",
    "ASSERTION_TYPE",
    "CLIENT_AUTH_METHODS",
    "AuthMethod",
    "ClientAuthMethod",
    "ClientAuthentication",
    "client_assertion",
]

AuthMethod = Literal[
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 §2.2
ASSERTION_LIFETIME = 60
_Pairs = list[tuple[str, str]]


@dataclass(frozen=True, repr=False)
class ClientAuthentication:
    """What a client proves itself with: an id plus the material its method needs."""

    client_id: str
    method: AuthMethod
    secret: Secret | None = None
    signing_key: SigningKey | None = None
    issuer: str | None = None  # the assertion audience for private_key_jwt (T61)
    assertion: Callable[[], str] | None = None  # a workload identity: the platform's token, instead of signing

    def apply(self, headers: _Pairs, form: _Pairs, *, now: float) -> None:
        """Add this client's authentication to a token request's headers and form."""
        CLIENT_AUTH_METHODS[self.method].apply(self, headers, form, now)

    def __repr__(self) -> str:
        return f"ClientAuthentication(client_id={self.client_id!r}, method={self.method!r})"


@dataclass(frozen=True)
class ClientAuthMethod:
    """One registry entry: the material the method needs and the parameters it sends."""

    name: AuthMethod
    needs: Literal["secret", "private_key", "tls"]
    parameters: tuple[str, ...]
    apply: Callable[[ClientAuthentication, _Pairs, _Pairs, float], None]

    @property
    def uses_mtls(self) -> bool:
        return self.needs == "tls"


def _form_encode(value: str) -> str:
    return quote_plus(value, safe="")


def _secret_of(auth: ClientAuthentication) -> str:
    if auth.secret is None:
        raise ValueError(f"{auth.method} needs a client secret")  # ClientCredentials checks this first
    return auth.secret.reveal()


def _basic(auth: ClientAuthentication, headers: _Pairs, form: _Pairs, now: float) -> None:
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
    raw = f"{_form_encode(auth.client_id)}:{_form_encode(_secret_of(auth))}".encode()
    headers.append(("authorization", "Basic " + base64.b64encode(raw).decode("ascii")))


def _post(auth: ClientAuthentication, headers: _Pairs, form: _Pairs, now: float) -> None:
    form.append(("client_id", auth.client_id))
    form.append(("client_secret", _secret_of(auth)))


def client_assertion(auth: ClientAuthentication, now: float) -> str:
    """The RFC 7523 §3 client assertion; `aud` is the issuer identifier string (T61). A workload
    identity's assertion is its platform's token, as the platform issued it."""
    if auth.assertion is not None:
        return auth.assertion()
    if auth.signing_key is None or auth.issuer is None:
        raise ValueError("private_key_jwt needs a signing key and the issuer")  # checked by ClientCredentials
    issued_at = int(now)
    claims = {
        "iss": auth.client_id,
        "sub": auth.client_id,
        "aud": auth.issuer,
        "jti": secrets.token_urlsafe(24),
        "iat": issued_at,
        "exp": issued_at + ASSERTION_LIFETIME,
    }
    header: dict[str, str] = {"typ": "client-authentication+jwt"}
    if auth.signing_key.key_id is not None:
        header["kid"] = auth.signing_key.key_id
    return auth.signing_key.sign(header, claims)


def _private_key_jwt(auth: ClientAuthentication, headers: _Pairs, form: _Pairs, now: float) -> None:
    form.append(("client_id", auth.client_id))
    form.append(("client_assertion_type", ASSERTION_TYPE))
    form.append(("client_assertion", client_assertion(auth, now)))


def _tls(auth: ClientAuthentication, headers: _Pairs, form: _Pairs, now: float) -> None:
    form.append(("client_id", auth.client_id))  # RFC 8705 §2: the certificate does the proving


CLIENT_AUTH_METHODS: Mapping[str, ClientAuthMethod] = {
    "client_secret_basic": ClientAuthMethod("client_secret_basic", "secret", ("Authorization",), _basic),
    "client_secret_post": ClientAuthMethod(
        "client_secret_post", "secret", ("client_id", "client_secret"), _post
    ),
    "private_key_jwt": ClientAuthMethod(
        "private_key_jwt",
        "private_key",
        ("client_id", "client_assertion_type", "client_assertion"),
        _private_key_jwt,
    ),
    "tls_client_auth": ClientAuthMethod("tls_client_auth", "tls", ("client_id",), _tls),
    "self_signed_tls_client_auth": ClientAuthMethod(
        "self_signed_tls_client_auth", "tls", ("client_id",), _tls
    ),
}
