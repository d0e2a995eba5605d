"""The client library's error: a token could not be obtained (RFC 6749 §5.2 codes plus local ones).

`TokenError.error` is the authorization server's registered code when it sent
one (`invalid_client`, `invalid_scope`, `invalid_target`, `use_dpop_nonce`...),
otherwise one of the local codes below. `retryable` says whether asking again
later can help: network failures, 5xx and 429 are retryable; protocol errors
are not. Descriptions are reduced to the §5.2 character set and never carry a
response body, a secret or a token.
"""

from __future__ import annotations

from typing import Final

from warden.errors import WardenError
from warden.protocol.errors import safe_description

__all__ = [
    "DISCOVERY_FAILED",
    "INVALID_RESPONSE",
    "INVALID_TOKEN_TYPE",
    "ISSUER_MISMATCH",
    "NETWORK_ERROR",
    "ORIGIN_NOT_ALLOWED",
    "RATE_LIMITED",
    "RESOURCE_MISMATCH",
    "SERVER_ERROR",
    "TokenError",
]

NETWORK_ERROR: Final = "network_error"
"""The request did not complete: DNS, connect, TLS, timeout or a broken connection. Retryable."""
SERVER_ERROR: Final = "server_error"
"""A 5xx answer without an OAuth error body. Retryable."""
RATE_LIMITED: Final = "slow_down"
"""A 429 answer without an OAuth error body (the Warden server itself sends `slow_down`). Retryable."""
INVALID_RESPONSE: Final = "invalid_response"
"""An answer that is not a well-formed token or error response (RFC 6749 §5.1, §5.2)."""
INVALID_TOKEN_TYPE: Final = "invalid_token_type"
"""A token of a type the client did not ask for: `Bearer` where `DPoP` was required (RFC 9449 §5; T63)."""
ISSUER_MISMATCH: Final = "issuer_mismatch"
"""The metadata document names an issuer other than the configured one (RFC 8414 §3.3; T62)."""
RESOURCE_MISMATCH: Final = "resource_mismatch"
"""Protected resource metadata names a resource other than the one the client called (RFC 9728 §3.3)."""
DISCOVERY_FAILED: Final = "discovery_failed"
"""The metadata document is missing, malformed or unusable (RFC 8414 §3.2)."""
ORIGIN_NOT_ALLOWED: Final = "origin_not_allowed"
"""A request to an origin outside `allowed_origins` would have carried the token (T64)."""


class TokenError(WardenError):
    """A token could not be obtained.

    Attributes:
        error: the RFC 6749 §5.2 (or RFC 8707, RFC 9449) code from the server, or a local code.
        error_description: a safe, human-readable description, or None.
        status: the HTTP status of the answer, or None when there was no answer.
        retryable: True when the same request may succeed later (network, 5xx, 429).
        retry_after: seconds the caller should wait before trying again, when known.
    """

    def __init__(
        self,
        error: str,
        error_description: str | None = None,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.error = safe_description(error, 64) or INVALID_RESPONSE
        self.error_description = safe_description(error_description) if error_description else None
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(self._message())

    def _message(self) -> str:
        text = self.error
        if self.error_description:
            text += f": {self.error_description}"
        if self.status is not None:
            text += f" (HTTP {self.status})"
        return text

    def copy(self, *, retry_after: float | None = None) -> TokenError:
        """Return a fresh exception with the same fields, for raising in another caller."""
        return type(self)(
            self.error,
            self.error_description,
            status=self.status,
            retryable=self.retryable,
            retry_after=self.retry_after if retry_after is None else retry_after,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(error={self.error!r}, error_description={self.error_description!r}, "
            f"status={self.status!r}, retryable={self.retryable!r})"
        )
