"""Resource-server library: validate RFC 9068 JWT access tokens in-process.

    from warden.resource import Validator
    v = Validator(issuer="http://127.0.0.1:8080", audience="https://api.example")
    claims = v.validate(token, scopes=["read"])   # or: await v.avalidate(...)

`Validator` checks what RFC 9068 §4 and RFC 8725 require (signature under an
allow-listed algorithm with the issuer's keys, `typ`, `iss`, `aud`, times with
leeway, required claims and scopes, tenant) plus sender binding: DPoP
(RFC 9449) and certificate-bound tokens (RFC 8705). Keys are discovered via
RFC 8414 metadata and cached (`JWKSCache`); validated tokens are cached too.
Failures raise `InvalidToken` (401), `InsufficientScope` (403),
`InvalidRequest` (400), `InvalidDPoPProof` / `UseDPoPNonce` (401) or, when the
issuer's keys were never reachable, `TemporarilyUnavailable` (503).

Integrations: `AccessTokenMiddleware` (pure ASGI, here), `require_scopes` in
`warden.resource.fastapi` (imports FastAPI), and `validate_request` /
`render_error` for anything else. `ProtectedResourceMetadata` (RFC 9728) is served
by both integrations and named in their challenges. This package needs only the
base install.
"""

from warden.protocol.errors import (
    InsufficientScope,
    InvalidDPoPProof,
    InvalidRequest,
    InvalidToken,
    TemporarilyUnavailable,
    UseDPoPNonce,
)
from warden.resource._render import ErrorResponse, render_error
from warden.resource.asgi import AccessTokenMiddleware
from warden.resource.cache import ValidationCache
from warden.resource.claims import Claims
from warden.resource.dpop import DPoPNonces, DPoPVerifier, MemoryReplayCache, ReplayCache
from warden.resource.jwks import JWKSCache
from warden.resource.metadata import ProtectedResourceMetadata, metadata_url
from warden.resource.mtls import certificate_thumbprint
from warden.resource.request import (
    Credentials,
    avalidate_request,
    error_response,
    parse_credentials,
    validate_request,
)
from warden.resource.status import StatusListCache, StatusPolicy
from warden.resource.validator import Scheme, Validator

__all__ = [
    "AccessTokenMiddleware",
    "Claims",
    "Credentials",
    "DPoPNonces",
    "DPoPVerifier",
    "ErrorResponse",
    "InsufficientScope",
    "InvalidDPoPProof",
    "InvalidRequest",
    "InvalidToken",
    "JWKSCache",
    "MemoryReplayCache",
    "ProtectedResourceMetadata",
    "ReplayCache",
    "Scheme",
    "StatusListCache",
    "StatusPolicy",
    "TemporarilyUnavailable",
    "UseDPoPNonce",
    "ValidationCache",
    "Validator",
    "avalidate_request",
    "certificate_thumbprint",
    "error_response",
    "metadata_url",
    "parse_credentials",
    "render_error",
    "validate_request",
]
