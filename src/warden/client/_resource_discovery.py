"""Discovering the authorization server from a resource server's 401 (RFC 9728 §5, §3.3; RFC 8414 §3).

A protected resource names its metadata in the `resource_metadata` parameter of
its `WWW-Authenticate` challenge (RFC 9728 §5.1). The client fetches that
document, checks that its `resource` is the resource it called (§3.3: identical
to the URL of the request, or, with `resource_match="prefix"`, the same origin
and a path prefix of it, as draft-mcguinness-oauth-rfc9728bis proposes), picks
an authorization server the document names, and fetches that server's RFC 8414
metadata, whose `issuer` must be exactly that server (§3.3 of RFC 8414). A
mismatch at either step aborts: a document naming another resource or issuer
may be an attacker's, and trusting it would send credentials elsewhere.

The flow is sans-I/O like the token flow; `discover_authorization_server` and
`adiscover_authorization_server` drive it with httpx.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack
from urllib.parse import urlsplit

import httpx

from warden._drive import arun, run
from warden.client._challenge import parse_challenges
from warden.client._discovery import MAX_METADATA_BYTES, EndpointResolver, ServerMetadata
from warden.client._errors import DISCOVERY_FAILED, NETWORK_ERROR, RESOURCE_MISMATCH, TokenError
from warden.client._messages import HTTPRequest, HTTPResponse, Reply, Send, Step, TransportFailure
from warden.client._transport import HTTPXTransport
from warden.core.urls import url_problem

__all__ = [
    "Discovery",
    "ResourceMetadata",
    "adiscover_authorization_server",
    "discover_authorization_server",
    "discover_flow",
    "parse_resource_metadata",
    "resource_metadata_url",
]

ResourceMatch = Literal["exact", "prefix"]


@dataclass(frozen=True)
class ResourceMetadata:
    """The RFC 9728 §2 members a client acts on, and the whole document."""

    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...]
    bearer_methods_supported: tuple[str, ...]
    dpop_signing_alg_values_supported: tuple[str, ...]
    document: Mapping[str, Any]


@dataclass(frozen=True)
class Discovery:
    """What a 401 led to: the resource's metadata and its authorization server's metadata.

    Use `issuer` and `audience` to build a `ClientCredentials`.
    """

    resource: ResourceMetadata
    authorization_server: ServerMetadata

    @property
    def issuer(self) -> str:
        return self.authorization_server.issuer

    @property
    def audience(self) -> str:
        return self.resource.resource


def resource_metadata_url(www_authenticate: str | Iterable[str]) -> str | None:
    """The `resource_metadata` URL of the first `Bearer` or `DPoP` challenge that carries one."""
    for challenge in parse_challenges(www_authenticate):
        if challenge.scheme in ("bearer", "dpop") and challenge.params.get("resource_metadata"):
            return challenge.params["resource_metadata"]
    return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _same(a: str, b: str) -> bool:
    """Identical, except that an empty http(s) path is "/" (RFC 3986 §6.2.3): httpx sends `https://h` as `https://h/`."""
    if a == b:
        return True
    pa, pb = urlsplit(a), urlsplit(b)
    return pa._replace(path=pa.path or "/") == pb._replace(path=pb.path or "/")


def _matches(resource: str, request_url: str, match: ResourceMatch) -> bool:
    if _same(resource, request_url):
        return True
    if match != "prefix" or _origin(resource) != _origin(request_url):
        return False
    res, req = urlsplit(resource), urlsplit(request_url)
    if res.query:
        return False
    prefix = res.path.rstrip("/")
    return req.path == prefix or req.path.startswith(prefix + "/") or not prefix


def _strings(document: Mapping[str, Any], name: str, status: int) -> tuple[str, ...]:
    value = document.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TokenError(DISCOVERY_FAILED, f"{name} is not a list of strings", status=status)
    return tuple(value)


def parse_resource_metadata(
    request_url: str,
    response: HTTPResponse,
    *,
    resource_match: ResourceMatch = "exact",
    allow_insecure_http: bool = False,
) -> ResourceMetadata:
    """Parse and check a protected resource metadata answer (RFC 9728 §3.2, §3.3); raise TokenError."""
    status = response.status
    if status >= 500 or status == 429:
        raise TokenError(DISCOVERY_FAILED, f"resource metadata answered HTTP {status}", status=status,
                         retryable=True)
    if status != 200:
        raise TokenError(DISCOVERY_FAILED, f"resource metadata answered HTTP {status}", status=status)
    if len(response.body) > MAX_METADATA_BYTES:
        raise TokenError(DISCOVERY_FAILED, "resource metadata document too large", status=status)
    try:
        document: Any = json.loads(response.body)
    except (ValueError, RecursionError):
        raise TokenError(DISCOVERY_FAILED, "resource metadata is not JSON", status=status) from None
    if not isinstance(document, dict):
        raise TokenError(DISCOVERY_FAILED, "resource metadata is not a JSON object", status=status)
    resource = document.get("resource")
    if not isinstance(resource, str) or url_problem(resource, allow_insecure_http=allow_insecure_http):
        raise TokenError(DISCOVERY_FAILED, "resource metadata has no usable resource", status=status)
    # RFC 9728 §3.3: metadata reached from a challenge must name the resource the client called.
    if not _matches(resource, request_url, resource_match):
        raise TokenError(RESOURCE_MISMATCH, "resource metadata names a different resource than the one called",
                         status=status)
    servers = _strings(document, "authorization_servers", status)
    for server in servers:
        if url_problem(server, allow_insecure_http=allow_insecure_http) is not None:
            raise TokenError(DISCOVERY_FAILED, "authorization_servers holds an unusable URL", status=status)
    return ResourceMetadata(
        resource=resource,
        authorization_servers=servers,
        scopes_supported=_strings(document, "scopes_supported", status),
        bearer_methods_supported=_strings(document, "bearer_methods_supported", status),
        dpop_signing_alg_values_supported=_strings(document, "dpop_signing_alg_values_supported", status),
        document=document,
    )


def discover_flow(
    request_url: str,
    www_authenticate: str | Iterable[str],
    *,
    issuer: str | None = None,
    resource_match: ResourceMatch = "exact",
    allow_insecure_http: bool = False,
) -> Generator[Step, Reply, Discovery]:
    """The sans-I/O discovery: resource metadata from the challenge, then the AS metadata.

    `issuer`, when given, must be one of the resource's `authorization_servers`; otherwise the
    first one is used.
    """
    url = resource_metadata_url(www_authenticate)
    if url is None:
        raise TokenError(DISCOVERY_FAILED, "the challenge names no resource_metadata")
    problem = url_problem(url, allow_insecure_http=allow_insecure_http)
    if problem is not None:
        raise TokenError(DISCOVERY_FAILED, f"resource_metadata {problem}")
    reply = yield Send(HTTPRequest("GET", url, (("accept", "application/json"),)))
    if not isinstance(reply, HTTPResponse):
        description = reply.description if isinstance(reply, TransportFailure) else "no response"
        raise TokenError(NETWORK_ERROR, f"resource metadata request failed: {description}", retryable=True)
    resource = parse_resource_metadata(request_url, reply, resource_match=resource_match,
                                       allow_insecure_http=allow_insecure_http)
    if not resource.authorization_servers:
        raise TokenError(DISCOVERY_FAILED, "resource metadata names no authorization server")
    if issuer is not None and issuer not in resource.authorization_servers:
        raise TokenError(DISCOVERY_FAILED, "the resource does not name the configured authorization server")
    chosen = issuer or resource.authorization_servers[0]
    resolver = EndpointResolver(issuer=chosen, token_endpoint=None, allow_insecure_http=allow_insecure_http)
    yield from resolver.resolve()
    assert resolver.metadata is not None
    return Discovery(resource, resolver.metadata)


def _request_url(response: httpx.Response) -> str:
    try:
        return str(response.request.url)
    except RuntimeError:  # a Response built by hand has no request
        raise TokenError(DISCOVERY_FAILED, "the response carries no request URL") from None


def _challenges(response: httpx.Response) -> list[str]:
    return response.headers.get_list("www-authenticate")


class _DiscoveryOptions(TypedDict, total=False):
    """Keyword arguments of `discover_authorization_server` and its async form (defaults in `discover_flow`)."""

    issuer: str | None
    resource_match: ResourceMatch
    allow_insecure_http: bool


def discover_authorization_server(
    response: httpx.Response, *, http_client: httpx.Client | None = None, timeout: float = 10.0,
    **options: Unpack[_DiscoveryOptions],
) -> Discovery:
    """From a resource server's 401, find its authorization server (RFC 9728 §5, §3.3; RFC 8414).

    `issuer` (the one expected, if known), `resource_match` and `allow_insecure_http` are those
    of `discover_flow`. Raises TokenError: no `resource_metadata` in the challenge, a document
    naming another resource (`resource_mismatch`) or issuer (`issuer_mismatch`), or a fetch that failed.
    """
    transport = HTTPXTransport(timeout=timeout, client=http_client)
    flow = discover_flow(_request_url(response), _challenges(response), **options)
    return run(flow, lambda step: transport.send(step.request) if isinstance(step, Send) else None)


async def adiscover_authorization_server(
    response: httpx.Response, *, http_client: httpx.AsyncClient | None = None, timeout: float = 10.0,
    **options: Unpack[_DiscoveryOptions],
) -> Discovery:
    """Async form of `discover_authorization_server`."""
    transport = HTTPXTransport(timeout=timeout, async_client=http_client)

    async def perform(step: Step) -> Reply:
        return await transport.asend(step.request) if isinstance(step, Send) else None

    return await arun(discover_flow(_request_url(response), _challenges(response), **options), perform)
