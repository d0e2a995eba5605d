"""Client authentication at the token, introspection and revocation endpoints (RFC 6749 §2.3).

Each method is an entry of `AUTH_METHODS`, keyed by its RFC 7591 wire name and
declaring the parameters it consumes; `parse_client_auth` finds which method a
request uses, refusing more than one (§2.3) and credentials in the URI (§2.3.1).
Checking the presented credentials against the registry is the job of
`warden.services.client_auth`.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote_plus

from warden.core.client import AuthMethod
from warden.protocol.client_assertion import ASSERTION_TYPE
from warden.protocol.errors import InvalidClient, InvalidRequest
from warden.protocol.form import Form

__all__ = ["AUTH_METHODS", "AuthMethodSpec", "PresentedCredentials", "parse_basic", "parse_client_auth"]


@dataclass(slots=True)  # not frozen: built on every token request, where frozen construction costs 4-5x
class PresentedCredentials:
    method: AuthMethod
    client_id: str
    secret: str | None = None
    assertion: str | None = None
    used_basic: bool = False
    certificate_used: bool = False  # mutual TLS: tls_client_auth or self_signed_tls_client_auth (RFC 8705)

    def __repr__(self) -> str:  # never print the secret or assertion
        return f"PresentedCredentials(method={self.method.value!r}, client_id={self.client_id!r})"


def parse_basic(authorization: str) -> tuple[str, str]:
    """Decode `Basic` credentials; the id and secret are form-urlencoded inside (§2.3.1)."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise InvalidClient("malformed Authorization header", reason="malformed_basic")
    try:
        # The check base64.b64decode(value, validate=True) makes: the alphabet, padding where it belongs.
        decoded = binascii.a2b_base64(value.strip().encode("ascii"), strict_mode=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidClient("malformed Authorization header", reason="malformed_basic") from None
    raw_id, sep, raw_secret = decoded.partition(":")
    if not sep or not raw_id:
        raise InvalidClient("malformed Authorization header", reason="malformed_basic")
    # Generated ids and secrets never need decoding: skip the call when there is nothing to decode.
    client_id = unquote_plus(raw_id) if "%" in raw_id or "+" in raw_id else raw_id
    secret = unquote_plus(raw_secret) if "%" in raw_secret or "+" in raw_secret else raw_secret
    return client_id, secret


@dataclass(frozen=True)
class AuthMethodSpec:
    """One client-authentication method: how to recognise it and which parameters it uses."""

    name: AuthMethod
    params: tuple[str, ...]
    is_present: Callable[[str | None, Form], bool]


def _basic_present(authorization: str | None, form: Form) -> bool:
    return authorization is not None


def _post_present(authorization: str | None, form: Form) -> bool:
    return "client_secret" in form


def _assertion_present(authorization: str | None, form: Form) -> bool:
    return "client_assertion" in form or "client_assertion_type" in form


AUTH_METHODS: dict[AuthMethod, AuthMethodSpec] = {
    AuthMethod.CLIENT_SECRET_BASIC: AuthMethodSpec(AuthMethod.CLIENT_SECRET_BASIC, (), _basic_present),
    AuthMethod.CLIENT_SECRET_POST: AuthMethodSpec(AuthMethod.CLIENT_SECRET_POST,
                                                  ("client_id", "client_secret"), _post_present),
    AuthMethod.PRIVATE_KEY_JWT: AuthMethodSpec(AuthMethod.PRIVATE_KEY_JWT,
                                               ("client_id", "client_assertion", "client_assertion_type"),
                                               _assertion_present),
}


def parse_client_auth(authorization: str | None, form: Form, query_names: list[str],
                      has_certificate: bool = False) -> PresentedCredentials:
    """Return the credentials a request presents, or raise InvalidRequest / InvalidClient.

    A TLS client certificate is ambient: it authenticates the client (RFC 8705 §2, with the
    client_id parameter) only when no other method is used; alongside another method it can
    still bind the issued token to the certificate.
    """
    if query_names and ("client_secret" in query_names or "client_assertion" in query_names):
        raise InvalidRequest("client credentials must not be sent in the request URI",
                             reason="credentials_in_query")  # §2.3.1
    present = []
    for spec in AUTH_METHODS.values():  # a loop, not a comprehension: this runs on every token request
        if spec.is_present(authorization, form):
            present.append(spec)
    if len(present) > 1:
        raise InvalidRequest("more than one client authentication method used", reason="multiple_auth_methods")
    if not present:
        form_client_id = form.single("client_id")
        if has_certificate and form_client_id is not None:
            return PresentedCredentials(AuthMethod.TLS_CLIENT_AUTH, form_client_id, certificate_used=True)
        raise InvalidClient("client authentication required", reason="no_client_auth")
    method = present[0].name
    form_id = form.single("client_id")
    if method is AuthMethod.CLIENT_SECRET_BASIC:
        assert authorization is not None
        client_id, secret = parse_basic(authorization)
        if form_id is not None and form_id != client_id:
            raise InvalidRequest("client_id does not match the authenticated client", reason="client_id_mismatch")
        return PresentedCredentials(method, client_id, secret=secret, used_basic=True)
    if method is AuthMethod.CLIENT_SECRET_POST:
        if form_id is None:
            raise InvalidClient("client_id is required with client_secret", reason="no_client_id")
        return PresentedCredentials(method, form_id, secret=form.single("client_secret"))
    # RFC 7521 §4.2: client_assertion_type and client_assertion, client_id optional.
    assertion_type = form.single("client_assertion_type")
    assertion = form.single("client_assertion")
    if assertion_type is None or assertion is None:
        raise InvalidRequest("client_assertion and client_assertion_type go together", reason="assertion_incomplete")
    if assertion_type != ASSERTION_TYPE:
        raise InvalidClient("unsupported client_assertion_type", reason="unsupported_assertion_type")
    return PresentedCredentials(method, form_id or "", assertion=assertion)
