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
    """An error with a registered OAuth error code.

    A subclass names its wire code and HTTP status in its bases, `class InvalidClient(OAuthError,
    error="invalid_client", status=401)`; either may be left to what it inherits.
    """

    error: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400

    def __init_subclass__(cls, *, error: str | None = None, status: int | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if error is not None:
            cls.error = error
        if status is not None:
            cls.status = status

    def __init__(self, description: str | None = None, *, reason: Reason | None = None) -> None:
        self.description = safe_description(description) if description else None
        self.reason: str = reason or self.error
        super().__init__(self.description or self.error)


class InvalidRequest(OAuthError, error="invalid_request"):
    """RFC 6749 §5.2."""


class InvalidClient(OAuthError, error="invalid_client", status=401):
    """401; the renderer adds `WWW-Authenticate` when the client used HTTP Basic (§5.2)."""


class InvalidGrant(OAuthError, error="invalid_grant"):
    """RFC 6749 §5.2."""


class UnauthorizedClient(OAuthError, error="unauthorized_client"):
    """RFC 6749 §5.2."""


class UnsupportedGrantType(OAuthError, error="unsupported_grant_type"):
    """RFC 6749 §5.2."""


class InvalidScope(OAuthError, error="invalid_scope"):
    """RFC 6749 §5.2."""


class InvalidTarget(OAuthError, error="invalid_target"):
    """RFC 8707 §2."""


class InvalidDPoPProof(OAuthError, error="invalid_dpop_proof"):
    """RFC 9449 §5."""


class UseDPoPNonce(OAuthError, error="use_dpop_nonce"):
    """RFC 9449 §8; `nonce` is what the renderer sends in the `DPoP-Nonce` header."""

    def __init__(self, description: str | None = None, *, reason: Reason | None = None,
                 nonce: str | None = None) -> None:
        super().__init__(description, reason=reason)
        self.nonce = nonce


class InvalidToken(OAuthError, error="invalid_token", status=401):
    """RFC 6750 §3.1: the access token is expired, revoked, malformed or otherwise invalid."""


class InvalidClientMetadata(OAuthError, error="invalid_client_metadata", status=400):
    """RFC 7591 §3.2.2: a client metadata field is invalid or not allowed (400)."""


class InsufficientScope(OAuthError, error="insufficient_scope", status=403):
    """RFC 6750 §3.1."""


class _RetryLater(OAuthError):
    """An answer with `Retry-After` (RFC 9110 §10.2.3): `retry_after` seconds."""

    def __init__(self, description: str | None = None, *, reason: Reason | None = None,
                 retry_after: float = 1.0) -> None:
        super().__init__(description, reason=reason)
        self.retry_after = retry_after


class TemporarilyUnavailable(_RetryLater, error="temporarily_unavailable", status=503):
    """503 with Retry-After: infrastructure trouble is never reported as an auth failure."""


class SlowDown(_RetryLater, error="slow_down", status=429):
    """429 with Retry-After: a rate limit was reached."""


# HTTP-level answers (RFC 9110 §15, RFC 6585 §5): not OAuth codes, but rendered the same way, by the one
# renderer of each side. Framing refusals keep the `invalid_request` code in the body.

class EndpointNotFound(OAuthError, error="not_found", status=404):
    """404: no endpoint at this path."""


class MethodNotAllowed(OAuthError, error="method_not_allowed", status=405):
    """405 with Allow (RFC 9110 §15.5.6)."""

    def __init__(self, description: str | None = None, *, reason: Reason | None = None,
                 allow: str = "GET") -> None:
        super().__init__(description, reason=reason)
        self.allow = allow


class RequestTimeout(InvalidRequest, status=408):
    """408: the request did not arrive in time (RFC 9110 §15.5.9)."""


class ContentTooLarge(InvalidRequest, status=413):
    """413: the request body is over the limit (RFC 9110 §15.5.14)."""


class URITooLong(InvalidRequest, status=414):
    """414: the request target is over the limit (RFC 9110 §15.5.15)."""


class HeaderFieldsTooLarge(InvalidRequest, status=431):
    """431: the header section is over the limit (RFC 6585 §5)."""


class NotImplementedCoding(InvalidRequest, status=501):
    """501: a transfer coding the server does not implement (RFC 9112 §6.1)."""


class ServerError(OAuthError, error="server_error", status=500):
    """500: a bug, never a client problem; the description carries only a correlation id."""


class StateConflict(OAuthError, error="conflict", status=409):
    """409: the request conflicts with what is stored (a record changed under it)."""
