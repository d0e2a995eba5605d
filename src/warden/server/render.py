"""Turn errors into HTTP: RFC 6749 §5.2 JSON bodies and the headers each code needs."""

from __future__ import annotations

from warden.protocol.errors import InvalidClient, OAuthError, SlowDown, TemporarilyUnavailable
from warden.server.http import NO_STORE, Response, json_response

__all__ = ["render_error"]

_BASIC_CHALLENGE = (b"www-authenticate", b'Basic realm="warden", charset="UTF-8"')


def render_error(error: OAuthError) -> Response:
    body = {"error": error.error}
    if error.description:
        body["error_description"] = error.description
    headers = list(NO_STORE)
    if isinstance(error, InvalidClient):
        # §5.2: a 401 must carry a challenge for the scheme the client may use.
        headers.append(_BASIC_CHALLENGE)
    if isinstance(error, (SlowDown, TemporarilyUnavailable)):
        headers.append((b"retry-after", str(max(1, int(error.retry_after + 0.999))).encode()))
    return json_response(error.status, body, headers)
