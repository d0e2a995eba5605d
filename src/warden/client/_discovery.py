"""Authorization server metadata discovery (RFC 8414 §3) with issuer pinning (§3.3; T62, T68).

The token endpoint is either configured directly or read from the metadata
document of the configured issuer. The document's `issuer` must be exactly the
configured issuer, otherwise discovery aborts: a document that names another
issuer may be an attacker's, and trusting it would send credentials elsewhere.
Under mutual-TLS client authentication the `mtls_endpoint_aliases` token
endpoint is preferred (RFC 8705 §5).

Deviation, for compatibility: for an issuer with a path component the §3.1
well-known URL is tried first and, on 404, the OpenID-style URL with the suffix
appended is tried; both answers are held to the same §3.3 check.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from warden.client._errors import DISCOVERY_FAILED, ISSUER_MISMATCH, NETWORK_ERROR, TokenError
from warden.client._messages import HTTPRequest, HTTPResponse, Reply, Send, Step, TransportFailure
from warden.core.urls import url_problem

__all__ = [
    "EndpointResolver",
    "ServerMetadata",
    "metadata_urls",
    "parse_metadata",
]

WELL_KNOWN = "/.well-known/oauth-authorization-server"
MAX_METADATA_BYTES = 64 * 1024


@dataclass(frozen=True)
class ServerMetadata:
    issuer: str
    token_endpoint: str
    mtls_token_endpoint: str | None = None


def metadata_urls(issuer: str) -> tuple[str, ...]:
    """The well-known metadata URLs for `issuer`, in the order they are tried (RFC 8414 §3.1)."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    inserted = urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, "", ""))
    if not path:
        return (inserted,)
    appended = urlunsplit((parts.scheme, parts.netloc, path + WELL_KNOWN, "", ""))
    return (inserted, appended)


def parse_metadata(
    issuer: str, response: HTTPResponse, *, allow_insecure_http: bool = False
) -> ServerMetadata:
    """Parse and check a metadata response; raise TokenError on any problem.

    Retryable: 5xx and 429. Not retryable: an issuer mismatch (§3.3) or a
    malformed document (§3.2).
    """
    if response.status >= 500 or response.status == 429:
        raise TokenError(
            DISCOVERY_FAILED,
            f"metadata endpoint answered HTTP {response.status}",
            status=response.status,
            retryable=True,
        )
    if response.status != 200:
        raise TokenError(
            DISCOVERY_FAILED, f"metadata endpoint answered HTTP {response.status}", status=response.status
        )
    if len(response.body) > MAX_METADATA_BYTES:
        raise TokenError(DISCOVERY_FAILED, "metadata document too large", status=response.status)
    try:
        document: Any = json.loads(response.body)
    except (ValueError, RecursionError):
        raise TokenError(DISCOVERY_FAILED, "metadata document is not JSON", status=response.status) from None
    if not isinstance(document, dict):
        raise TokenError(DISCOVERY_FAILED, "metadata document is not a JSON object", status=response.status)
    # RFC 8414 §3.3: the issuer must be identical to the one the URL was built from.
    if document.get("issuer") != issuer:
        raise TokenError(
            ISSUER_MISMATCH,
            "metadata names a different issuer than the one configured",
            status=response.status,
        )
    token_endpoint = document.get("token_endpoint")
    problem = url_problem(token_endpoint, allow_insecure_http=allow_insecure_http)
    if problem is not None or not isinstance(token_endpoint, str):
        raise TokenError(
            DISCOVERY_FAILED, f"token_endpoint {problem or 'is missing'}", status=response.status
        )
    mtls_endpoint: str | None = None
    aliases = document.get("mtls_endpoint_aliases")
    if isinstance(aliases, dict) and aliases.get("token_endpoint") is not None:
        candidate = aliases["token_endpoint"]
        if url_problem(candidate, allow_insecure_http=allow_insecure_http) is not None:
            raise TokenError(
                DISCOVERY_FAILED,
                "mtls_endpoint_aliases.token_endpoint is not a usable URL",
                status=response.status,
            )
        mtls_endpoint = str(candidate)
    return ServerMetadata(issuer=issuer, token_endpoint=token_endpoint, mtls_token_endpoint=mtls_endpoint)


class EndpointResolver:
    """Knows the token endpoint, discovering it once from the issuer's metadata when not configured.

    Shared by every token flow of one client: the first successful discovery is
    kept for the life of the object.
    """

    def __init__(
        self,
        *,
        issuer: str | None,
        token_endpoint: str | None,
        prefer_mtls: bool = False,
        allow_insecure_http: bool = False,
    ) -> None:
        self.issuer = issuer
        self._token_endpoint = token_endpoint
        self._prefer_mtls = prefer_mtls
        self._allow_insecure_http = allow_insecure_http
        self.metadata: ServerMetadata | None = None

    @property
    def token_endpoint(self) -> str | None:
        return self._token_endpoint

    def resolve(self) -> Generator[Step, Reply, str]:
        """Return the token endpoint, yielding metadata requests when it is not yet known."""
        if self._token_endpoint is not None:
            return self._token_endpoint
        issuer = self.issuer
        if issuer is None:  # the constructor of ClientCredentials requires one of the two
            raise TokenError(DISCOVERY_FAILED, "neither issuer nor token_endpoint configured")
        first, *fallback = metadata_urls(issuer)
        reply = yield from self._get(first)
        if reply.status == 404 and fallback:  # a path issuer without the §3.1 URL: try the appended form
            reply = yield from self._get(fallback[0])
        metadata = parse_metadata(issuer, reply, allow_insecure_http=self._allow_insecure_http)
        self.metadata = metadata
        endpoint = metadata.token_endpoint
        if self._prefer_mtls and metadata.mtls_token_endpoint:
            endpoint = metadata.mtls_token_endpoint
        self._token_endpoint = endpoint
        return endpoint

    @staticmethod
    def _get(url: str) -> Generator[Step, Reply, HTTPResponse]:
        reply = yield Send(HTTPRequest("GET", url, (("accept", "application/json"),)))
        if not isinstance(reply, HTTPResponse):
            description = reply.description if isinstance(reply, TransportFailure) else "no response"
            raise TokenError(NETWORK_ERROR, f"metadata request failed: {description}", retryable=True)
        return reply
