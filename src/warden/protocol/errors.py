"""OAuth error family (RFC 6749 §5.2, RFC 6750 §3.1, RFC 8707 §2, RFC 9449 §5, §8).

Errors describe what went wrong, not how HTTP shows it: the status is a class
attribute, and the renderers in `warden.server` and `warden.resource` turn an
error into JSON and headers. Each raise may carry a private `reason` used only
for audit and metrics; callers on the wire see `error` and a safe description.
"""

from __future__ import annotations

import re
from typing import ClassVar

from warden.core.redaction import redact
from warden.errors import WardenError
from warden.protocol.reasons import Reason

__all__ = [
    "ContentTooLarge",
    "EndpointNotFound",
    "HeaderFieldsTooLarge",
    "InsufficientScope",
    "InvalidClient",
    "InvalidClientMetadata",
    "InvalidDPoPProof",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "InvalidToken",
    "MethodNotAllowed",
    "NotImplementedCoding",
    "OAuthError",
    "RequestTimeout",
    "ServerError",
    "SlowDown",
    "StateConflict",
    "TemporarilyUnavailable",
    "URITooLong",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UseDPoPNonce",
    "safe_description",
]

# RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
_UNSAFE = re.compile(r'[^\x20-\x21\x23-\x5b\x5d-\x7e]')


def safe_description(text: str, limit: int = 200) -> str:
    """Return `text` reduced to the RFC 6749 §5.2 character set and a bounded length."""
    return _UNSAFE.sub("?", redact(text))[:limit]


class OAuthError(WardenError):
    """An error with a registered OAuth error code."""

    error: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400

    def __init__(self, description: str | None = None, *, reason: Reason | None = None) -> None:
        self.description = safe_description(description) if description else None
        self.reason: str = reason or self.error
        super().__init__(self.description or self.error)


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """401; the renderer adds `WWW-Authenticate` when the client used HTTP Basic (§5.2)."""

    error = "invalid_client"
    status = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """RFC 8707 §2."""

    error = "invalid_target"


class InvalidDPoPProof(OAuthError):
    """RFC 9449 §5."""

    error = "invalid_dpop_proof"


class UseDPoPNonce(OAuthError):
    """RFC 9449 §8; `nonce` is what the renderer sends in the `DPoP-Nonce` header."""

    error = "use_dpop_nonce"

    def __init__(self, description: str | None = None, *, reason: Reason | None = None,
                 nonce: str | None = None) -> None:
        super().__init__(description, reason=reason)
        self.nonce = nonce


class InvalidToken(OAuthError):
    """RFC 6750 §3.1: the access token is expired, revoked, malformed or otherwise invalid."""

    error = "invalid_token"
    status = 401


class InvalidClientMetadata(OAuthError):
    """RFC 7591 §3.2.2: a client metadata field is invalid or not allowed (400)."""

    error = "invalid_client_metadata"


class InsufficientScope(OAuthError):
    """RFC 6750 §3.1."""

    error = "insufficient_scope"
    status = 403


class TemporarilyUnavailable(OAuthError):
    """503 with Retry-After: infrastructure trouble is never reported as an auth failure."""

    error = "temporarily_unavailable"
    status = 503

    def __init__(self, description: str | None = None, *, reason: Reason | None = None,
                 retry_after: float = 1.0) -> None:
        super().__init__(description, reason=reason)
        self.retry_after = retry_after


class SlowDown(OAuthError):
    """429 with Retry-After: a rate limit was reached."""

    error = "slow_down"
    status = 429

    def __init__(self, description: str | None = None, *, reason: Reason | None = None,
                 retry_after: float = 1.0) -> None:
        super().__init__(description, reason=reason)
        self.retry_after = retry_after


# HTTP-level answers (RFC 9110 §15, RFC 6585 §5): not OAuth codes, but rendered the same way, by the one
# renderer of each side. Framing refusals keep the `invalid_request` code in the body.

class EndpointNotFound(OAuthError):
    """404: no endpoint at this path."""

    error = "not_found"
    status = 404


class MethodNotAllowed(OAuthError):
    """405 with Allow (RFC 9110 §15.5.6)."""

    error = "method_not_allowed"
    status = 405

    def __init__(self, description: str | None = None, *, reason: Reason | None = None,
                 allow: str = "GET") -> None:
        super().__init__(description, reason=reason)
        self.allow = allow


class RequestTimeout(InvalidRequest):
    """408: the request did not arrive in time (RFC 9110 §15.5.9)."""

    status = 408


class ContentTooLarge(InvalidRequest):
    """413: the request body is over the limit (RFC 9110 §15.5.14)."""

    status = 413


class URITooLong(InvalidRequest):
    """414: the request target is over the limit (RFC 9110 §15.5.15)."""

    status = 414


class HeaderFieldsTooLarge(InvalidRequest):
    """431: the header section is over the limit (RFC 6585 §5)."""

    status = 431


class NotImplementedCoding(InvalidRequest):
    """501: a transfer coding the server does not implement (RFC 9112 §6.1)."""

    status = 501


class ServerError(OAuthError):
    """500: a bug, never a client problem; the description carries only a correlation id."""

    error = "server_error"
    status = 500


class StateConflict(OAuthError):
    """409: the request conflicts with what is stored (a record changed under it)."""

    error = "conflict"
    status = 409
