"""Turn results and errors into HTTP: the RFC 6749 §5.1 token response, §5.2 error bodies, and the
headers each needs.

The token response is written on every issuance, so it is assembled from
fragments; strings pass through the C escaper `json.dumps` uses, so the bytes
are exactly those of `json.dumps(body, separators=(",", ":"))`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from http import HTTPStatus
from json.encoder import encode_basestring_ascii as _quote

from warden.protocol.errors import (
    InvalidClient,
    InvalidToken,
    MethodNotAllowed,
    OAuthError,
    SlowDown,
    TemporarilyUnavailable,
    UseDPoPNonce,
)
from warden.server.http import JSON_CONTENT, NO_STORE, Response, json_response

_PROBLEM_CONTENT = (b"content-type", b"application/problem+json")

__all__ = ["render_error", "render_problem", "render_token"]

_BASIC_CHALLENGE = (b"www-authenticate", b'Basic realm="warden", charset="UTF-8"')
_TOKEN_HEADERS = (JSON_CONTENT, *NO_STORE)  # §5.1: no-store on every response carrying a token


def render_token(access_token: str, expires_in: int, scope: str, token_type: str = "Bearer",
                 dpop_nonce: str | None = None, issued_token_type: str | None = None) -> Response:
    """§5.1 successful response; `token_type` is DPoP for a DPoP-bound token (RFC 9449 §5);
    `issued_token_type` answers a token exchange (RFC 8693 §2.2.1)."""
    body = (f'{{"access_token":{_quote(access_token)},"token_type":"{token_type}","expires_in":{int(expires_in)},'
            f'"scope":{_quote(scope)}')
    if issued_token_type is not None:
        body += f',"issued_token_type":{_quote(issued_token_type)}'
    body += "}"
    headers = list(_TOKEN_HEADERS)
    if dpop_nonce is not None:
        headers.append((b"dpop-nonce", dpop_nonce.encode("ascii")))
    return Response(200, body.encode("ascii"), headers)


def render_error(error: OAuthError) -> Response:
    body = {"error": error.error}
    if error.description:
        body["error_description"] = error.description
    headers = list(NO_STORE)
    if isinstance(error, InvalidClient):
        # §5.2: a 401 must carry a challenge for the scheme the client may use.
        headers.append(_BASIC_CHALLENGE)
    if isinstance(error, InvalidToken):
        # RFC 6750 §3.1; the registration endpoints (RFC 7591 §3, RFC 7592 §2) take bearer tokens
        headers.append((b"www-authenticate", b'Bearer error="invalid_token"'))
    if isinstance(error, (SlowDown, TemporarilyUnavailable)):
        headers.append((b"retry-after", str(max(1, int(error.retry_after + 0.999))).encode()))
    if isinstance(error, MethodNotAllowed):
        headers.append((b"allow", error.allow.encode("ascii")))
    if isinstance(error, UseDPoPNonce) and error.nonce:
        headers.append((b"dpop-nonce", error.nonce.encode("ascii")))  # RFC 9449 §8
    return json_response(error.status, body, headers)


def render_problem(status: int, error: str, detail: str = "",
                   headers: Iterable[tuple[bytes, bytes]] = ()) -> Response:
    """RFC 9457 problem details (`about:blank` type, so `title` is the status phrase); `error` keeps the
    OAuth-style code as an extension member. Used by the admin API, whose callers are not OAuth clients."""
    body: dict[str, object] = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
                               "error": error}
    if detail:
        body["detail"] = detail[:300]
    return Response(status, json.dumps(body, separators=(",", ":")).encode("utf-8"),
                    [_PROBLEM_CONTENT, *NO_STORE, *headers])
