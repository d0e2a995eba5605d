"""Access-token credentials in an HTTP request (RFC 6750 §2, §3.1; RFC 9449 §7.1, §7.2).

Framework-neutral helpers: `parse_credentials` reads the `Authorization` and
`DPoP` header fields, `validate_request` / `avalidate_request` validate what
they carry, and `error_response` renders a failure for this validator. The
ASGI middleware and the FastAPI dependency are built on them; other
frameworks can call them directly.

Rules: only the `Authorization` header carries a token (RFC 6750 §2.1); a
token in the query string is refused (§2.3 discouraged, SECURITY T49) and so is
more than one `Authorization` field (`invalid_request`, 400; RFC 9449 §7.2
figure). Form-encoded body tokens (§2.2) are not read. A request with no
credentials, or with a scheme other than Bearer/DPoP, gets 401 with a bare
challenge (§3.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NotRequired, TypedDict, Unpack
from urllib.parse import parse_qsl, urlsplit

from warden.protocol.errors import InvalidDPoPProof, InvalidRequest, InvalidToken, OAuthError, UseDPoPNonce
from warden.resource._render import MISSING_TOKEN, ErrorResponse, render_error
from warden.resource.claims import Claims
from warden.resource.mtls import CertificateInput
from warden.resource.validator import Scheme, Validator, _Presentation

__all__ = [
    "Credentials",
    "avalidate_request",
    "error_response",
    "parse_credentials",
    "presented_scheme",
    "validate_request",
]

# RFC 6750 §2.1 b64token.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SCHEMES: dict[str, Scheme] = {"bearer": "Bearer", "dpop": "DPoP"}


@dataclass(frozen=True)
class Credentials:
    """What a request presents: scheme, token and any DPoP proofs (hidden from repr)."""

    scheme: Scheme
    token: str = field(repr=False)
    dpop_proofs: tuple[str, ...] = field(default=(), repr=False)


def parse_credentials(headers: Iterable[tuple[str, str]], query: str = "") -> Credentials:
    """Read the credentials of a request.

    Args:
        headers: every header field as (name, value); repeated names appear repeatedly.
        query: the raw query string, checked for a forbidden `access_token` parameter.

    Raises:
        InvalidRequest: a token in the query, two Authorization fields, or a malformed one.
        InvalidToken: no credentials (reason `missing_token`).
    """
    authorizations: list[str] = []
    proofs: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == "authorization":
            authorizations.append(value)
        elif lowered == "dpop":
            proofs.append(value.strip())
    if "access_token" in query and any(k == "access_token" for k, _ in parse_qsl(query, keep_blank_values=True)):
        raise InvalidRequest("access tokens in the query string are not accepted", reason="token_in_query")
    if len(authorizations) > 1:
        raise InvalidRequest("more than one Authorization header", reason="multiple_credentials")
    if not authorizations:
        raise InvalidToken("access token required", reason=MISSING_TOKEN)
    scheme_name, _, token = authorizations[0].strip().partition(" ")
    scheme = _SCHEMES.get(scheme_name.lower())
    if scheme is None:
        raise InvalidToken("access token required", reason=MISSING_TOKEN)
    token = token.strip()
    if not _B64TOKEN.fullmatch(token):
        raise InvalidRequest("malformed Authorization header", reason="malformed_authorization")
    return Credentials(scheme, token, tuple(proofs))


class _RequestParts(TypedDict):
    """The keyword arguments of `validate_request` and `avalidate_request`."""

    method: str
    url: str
    headers: Iterable[tuple[str, str]]
    client_certificate: NotRequired[CertificateInput | None]
    scopes: NotRequired[Iterable[str]]


def _presented(
    *,
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    client_certificate: CertificateInput | None = None,
    scopes: Iterable[str] = (),
) -> tuple[str, _Presentation]:
    """The token of a request and how it was presented (for `Validator.validate`)."""
    credentials = parse_credentials(headers, urlsplit(url).query)
    return credentials.token, {
        "scopes": scopes, "scheme": credentials.scheme, "dpop_proof": credentials.dpop_proofs,
        "method": method, "url": url, "client_certificate": client_certificate,
    }


def validate_request(validator: Validator, **request: Unpack[_RequestParts]) -> Claims:
    """Validate the credentials of one request; see `parse_credentials` and `Validator.validate`.

    Keyword arguments:
        method / url: the request as the client addressed it (DPoP `htm`/`htu`).
        headers: every header field as (name, value).
        client_certificate: the TLS client certificate, if any.
        scopes: scopes the request needs.
    """
    token, presented = _presented(**request)
    return validator.validate(token, **presented)


async def avalidate_request(validator: Validator, **request: Unpack[_RequestParts]) -> Claims:
    """Async form of `validate_request`."""
    token, presented = _presented(**request)
    return await validator.avalidate(token, **presented)


def presented_scheme(headers: Iterable[tuple[str, str]]) -> Scheme:
    """The scheme the client attempted, for choosing which challenge carries the error."""
    for name, value in headers:
        if name.lower() == "authorization" and value.strip().lower().startswith("dpop "):
            return "DPoP"
    return "Bearer"


def error_response(
    validator: Validator,
    error: OAuthError,
    *,
    scheme: Scheme = "Bearer",
    realm: str | None = None,
    scopes: Iterable[str] = (),
    resource_metadata: str | None = None,
) -> ErrorResponse:
    """Render `error` with this validator's DPoP algorithms and, when needed, a fresh DPoP nonce.

    `resource_metadata` is the RFC 9728 metadata URL named in the challenges (§5.1).
    """
    nonces = validator.dpop.nonces
    nonce = None
    if nonces is not None and (scheme == "DPoP" or isinstance(error, (UseDPoPNonce, InvalidDPoPProof))):
        nonce = nonces.current()
    return render_error(error, realm=realm, scope=scopes, scheme=scheme,
                        dpop_algorithms=validator.dpop.algorithms, dpop_nonce=nonce,
                        resource_metadata=resource_metadata)
