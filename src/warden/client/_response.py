"""Token endpoint answers: success (RFC 6749 §5.1), errors (§5.2), `Retry-After` (RFC 9110 §10.2.3).

Everything here treats the answer as untrusted input and either returns a typed
value or raises `TokenError`; no other exception escapes. Notable rules:

- `token_type` is required and compared case-insensitively (§7.1). Only `Bearer`
  and, when the client holds a DPoP key, `DPoP` are accepted: a `Bearer` token
  where DPoP was requested is a downgrade and is refused (RFC 9449 §5; T63).
- `expires_in` is optional; when it is missing the caller applies a short safe
  default (T63). A numeric string is tolerated; zero, negative or non-finite is not.
- The access token must be visible ASCII without spaces, so it cannot smuggle
  header content, and at most 16 KiB long.
- An error answer is classified by status: network-level trouble, 5xx, 408 and
  429 are retryable; other 4xx are protocol errors and are not. An HTML or
  otherwise non-JSON body still yields a typed error, and no body text is copied.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from warden.client._errors import INVALID_RESPONSE, INVALID_TOKEN_TYPE, RATE_LIMITED, SERVER_ERROR, TokenError
from warden.client._messages import HTTPResponse

__all__ = [
    "MAX_RESPONSE_BYTES",
    "TokenResponse",
    "is_retryable_status",
    "parse_error_response",
    "parse_retry_after",
    "parse_token_response",
]

MAX_RESPONSE_BYTES = 64 * 1024
MAX_ACCESS_TOKEN_CHARS = 16 * 1024
_ACCESS_TOKEN = re.compile(r"[\x21-\x7e]+")
_ERROR_CODE = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}")  # RFC 6749 §5.2 NQSCHAR
_DELAY_SECONDS = re.compile(r"\s*(\d{1,10})\s*")
_TOKEN_TYPES = {"bearer": "Bearer", "dpop": "DPoP"}
_MAX_EXPIRES_IN = 10**12  # seconds, some 30,000 years: far past any real lifetime, exact as a float


@dataclass(frozen=True, repr=False)
class TokenResponse:
    access_token: str
    token_type: str  # "Bearer" or "DPoP"
    expires_in: float | None
    scope: tuple[str, ...] | None

    def __repr__(self) -> str:
        return (
            f"TokenResponse(token_type={self.token_type!r}, expires_in={self.expires_in!r}, "
            f"scope={self.scope!r})"
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def parse_retry_after(response: HTTPResponse, *, cap: float) -> float | None:
    """Seconds to wait from a `Retry-After` header, capped at `cap`; None if absent or unusable.

    An HTTP-date is measured against the answer's own `Date` header, so the local
    clock's skew does not matter (F12); without a `Date` it is ignored.
    """
    value = response.header("retry-after")
    if not value:
        return None
    match = _DELAY_SECONDS.fullmatch(value)
    if match:
        return min(float(match.group(1)), cap)
    date = response.header("date")
    if not date:
        return None
    try:
        delta = (parsedate_to_datetime(value) - parsedate_to_datetime(date)).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(delta, 0.0), cap)


def parse_error_response(response: HTTPResponse, *, max_retry_after: float = 300.0) -> TokenError:
    """The TokenError an unsuccessful answer stands for."""
    status = response.status
    retryable = is_retryable_status(status)
    retry_after = parse_retry_after(response, cap=max_retry_after) if retryable else None
    document = _json_object(response.body) if len(response.body) <= MAX_RESPONSE_BYTES else None
    code = document.get("error") if document else None
    if isinstance(code, str) and _ERROR_CODE.fullmatch(code):
        description = document.get("error_description") if document else None
        return TokenError(
            code,
            description if isinstance(description, str) else None,
            status=status,
            retryable=retryable,
            retry_after=retry_after,
        )
    if status == 429:
        fallback = RATE_LIMITED
    elif status >= 500:
        fallback = SERVER_ERROR
    else:
        fallback = INVALID_RESPONSE
    return TokenError(
        fallback,
        f"HTTP {status} without an OAuth error response",
        status=status,
        retryable=retryable,
        retry_after=retry_after,
    )


def _expires_in(value: object, status: int) -> float | None:
    if value is None:
        return None
    number: float
    if isinstance(value, bool):
        raise TokenError(INVALID_RESPONSE, "expires_in is not a number", status=status)
    if isinstance(value, (int, float)):
        if not -_MAX_EXPIRES_IN <= value <= _MAX_EXPIRES_IN:
            # an integer too large for a float (10**400) would raise OverflowError in float()
            raise TokenError(INVALID_RESPONSE, "expires_in is out of range", status=status)
        number = float(value)
    elif isinstance(value, str) and value.strip().isdigit() and len(value) <= 12:
        number = float(value.strip())  # tolerated: some servers send a numeric string
    else:
        raise TokenError(INVALID_RESPONSE, "expires_in is not a number", status=status)
    if not math.isfinite(number) or number <= 0:
        raise TokenError(INVALID_RESPONSE, "expires_in must be a positive number", status=status)
    return number


def _scope(value: object, status: int) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(token for token in value.split(" ") if token)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)  # not RFC 6749, but common; harmless to accept
    raise TokenError(INVALID_RESPONSE, "scope is not a string", status=status)


def parse_token_response(
    response: HTTPResponse, *, dpop: bool, max_retry_after: float = 300.0
) -> TokenResponse:
    """Parse a token endpoint answer; return the token or raise TokenError.

    Args:
        response: the answer to the token request.
        dpop: True when the request carried a DPoP proof, so `token_type` must be DPoP.
        max_retry_after: the cap applied to `Retry-After` on retryable errors.
    """
    status = response.status
    if status != 200:
        raise parse_error_response(response, max_retry_after=max_retry_after)
    if len(response.body) > MAX_RESPONSE_BYTES:
        raise TokenError(INVALID_RESPONSE, "token response too large", status=status)
    document = _json_object(response.body)
    if document is None:
        raise TokenError(INVALID_RESPONSE, "token response is not a JSON object", status=status)
    access_token = document.get("access_token")
    if (
        not isinstance(access_token, str)
        or len(access_token) > MAX_ACCESS_TOKEN_CHARS
        or not _ACCESS_TOKEN.fullmatch(access_token)
    ):
        raise TokenError(INVALID_RESPONSE, "access_token missing or malformed", status=status)
    raw_type = document.get("token_type")
    if not isinstance(raw_type, str) or not raw_type:
        raise TokenError(INVALID_RESPONSE, "token_type missing", status=status)  # RFC 6749 §5.1: REQUIRED
    token_type = _TOKEN_TYPES.get(raw_type.lower())
    expected = "DPoP" if dpop else "Bearer"
    if token_type != expected:
        # RFC 9449 §5: a Bearer token in answer to a DPoP request is a downgrade; RFC 6749 §7.1:
        # a client must not use a token whose type it does not understand.
        raise TokenError(INVALID_TOKEN_TYPE, f"expected token_type {expected}", status=status)
    return TokenResponse(
        access_token=access_token,
        token_type=token_type,
        expires_in=_expires_in(document.get("expires_in"), status),
        scope=_scope(document.get("scope"), status),
    )
