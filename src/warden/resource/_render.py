"""Wire form of resource-server errors (RFC 6750 §3, §3.1; RFC 9449 §7.1, §8, §9).

Errors describe what went wrong; this module alone decides how HTTP shows
them: the status, a JSON body (`error`, `error_description`) and the
`WWW-Authenticate` challenges. The error code goes in the challenge of the
scheme the client used (`Bearer` or `DPoP`), or in the DPoP challenge for a
DPoP proof error; the DPoP challenge advertises `algs` (RFC 9449 §7.1). A
request without credentials gets the challenges with no error code
(RFC 6750 §3.1). Every challenge may name the protected resource metadata
(`resource_metadata`, RFC 9728 §5.1). Nothing from the request, and never the
token, is echoed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from warden.protocol.errors import (
    InsufficientScope,
    InvalidDPoPProof,
    InvalidRequest,
    InvalidToken,
    OAuthError,
    TemporarilyUnavailable,
    UseDPoPNonce,
)

__all__ = ["MISSING_TOKEN", "ErrorResponse", "render_error"]

MISSING_TOKEN: Final = "missing_token"
"""The `reason` of the `InvalidToken` raised for a request that carries no credentials."""

_STATUS: dict[type[OAuthError], int] = {
    InvalidToken: 401,
    InsufficientScope: 403,
    InvalidRequest: 400,
    InvalidDPoPProof: 401,  # at a resource server, RFC 9449 §7.1 (400 is the token endpoint's)
    UseDPoPNonce: 401,  # RFC 9449 §9
    TemporarilyUnavailable: 503,
}


@dataclass(frozen=True)
class ErrorResponse:
    """Status, headers (name, value) and body of an error answer."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _status(error: OAuthError) -> int:
    for cls in type(error).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return error.status


def render_error(
    error: OAuthError,
    *,
    realm: str | None = None,
    scope: Iterable[str] = (),
    scheme: Literal["Bearer", "DPoP"] = "Bearer",
    dpop_algorithms: Sequence[str] = (),
    dpop_nonce: str | None = None,
    resource_metadata: str | None = None,
) -> ErrorResponse:
    """Render `error` as a resource server's answer.

    Args:
        realm: protection space named in the challenges (RFC 6750 §3).
        scope: scopes the resource needs; sent with `insufficient_scope` (§3).
        scheme: the scheme the client used, which receives the error code.
        dpop_algorithms: when non-empty, a DPoP challenge with `algs` is added.
        dpop_nonce: sent as `DPoP-Nonce` (RFC 9449 §9), e.g. with `use_dpop_nonce`.
        resource_metadata: URL of the protected resource metadata, sent in every challenge
            (RFC 9728 §5.1), with or without an error code.
    """
    status = _status(error)
    headers: list[tuple[str, str]] = [("content-type", "application/json"), ("cache-control", "no-store")]
    if isinstance(error, TemporarilyUnavailable):
        headers.append(("retry-after", str(error.retry_after)))
        body = {"error": error.error, "error_description": error.description or "try again later"}
        return ErrorResponse(status, tuple(headers), json.dumps(body).encode())

    missing = isinstance(error, InvalidToken) and error.reason == MISSING_TOKEN
    params = [f"realm={_quote(realm)}"] if realm else []
    if resource_metadata:
        params.append(f"resource_metadata={_quote(resource_metadata)}")
    error_params: list[str] = []
    if not missing:
        error_params.append(f"error={_quote(error.error)}")
        if error.description:
            error_params.append(f"error_description={_quote(error.description)}")
        scope_value = " ".join(scope)
        if isinstance(error, InsufficientScope) and scope_value:
            error_params.append(f"scope={_quote(scope_value)}")
    dpop_error = isinstance(error, (InvalidDPoPProof, UseDPoPNonce)) or scheme == "DPoP"
    bearer = ["Bearer " + ", ".join(params + ([] if dpop_error else error_params))]
    dpop: list[str] = []
    if dpop_algorithms or dpop_error:
        dpop_params = params + (error_params if dpop_error else [])
        if dpop_algorithms:
            dpop_params.append(f"algs={_quote(' '.join(dpop_algorithms))}")
        dpop = ["DPoP " + ", ".join(dpop_params)]
    challenges = dpop + bearer if dpop_error else bearer + dpop
    headers.append(("www-authenticate", ", ".join(c.rstrip() for c in challenges)))
    if dpop_nonce is not None:
        headers.append(("dpop-nonce", dpop_nonce))
    if missing:
        body = {"error_description": "access token required"}
    else:
        body = {"error": error.error}
        if error.description:
            body["error_description"] = error.description
    return ErrorResponse(status, tuple(headers), json.dumps(body).encode())
