"""Pure ASGI middleware that protects an application with access tokens (RFC 6750, RFC 9449 §7).

Works with any ASGI 3 application (Starlette, FastAPI, others) and needs no
framework. For each HTTP or WebSocket request it reads the credentials (see
`warden.resource.request`), validates them with a `Validator`, and then

- on success, stores the `Claims` in `scope["warden.claims"]` and in
  `scope["state"]["warden_claims"]` (Starlette: `request.state.warden_claims`)
  and calls the application (with `optional=True`, an anonymous request gets
  `None` there);
- on failure, answers itself: 400/401/403/503 with a JSON body and
  `WWW-Authenticate` (RFC 6750 §3, RFC 9449 §7.1) for HTTP, or closes a
  WebSocket handshake with code 1008.

The request URI used for the DPoP `htu` check is the scheme, `Host` and raw path
the server saw, or `public_url` + path behind a proxy that rewrites them. The
client certificate for RFC 8705 tokens comes from the ASGI TLS extension, or,
only when `client_cert_header` names it, from a header a trusted proxy sets.

With `resource_metadata`, the middleware also answers `GET` at the RFC 9728 §3
well-known path of the resource (without a token) and names that URL in every
challenge (`resource_metadata`, §5.1), so a client can discover the
authorization server from a 401.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from warden.asgi_types import ASGIApp, Receive, Scope, Send
from warden.protocol.errors import InvalidToken, OAuthError
from warden.resource._render import MISSING_TOKEN
from warden.resource.claims import Claims
from warden.resource.metadata import ProtectedResourceMetadata
from warden.resource.mtls import CertificateInput, parse_client_cert_header
from warden.resource.request import avalidate_request, error_response, presented_scheme
from warden.resource.validator import Scheme, Validator

__all__ = [
    "CLAIMS_SCOPE_KEY",
    "CLAIMS_STATE_KEY",
    "RESOURCE_METADATA_SCOPE_KEY",
    "AccessTokenMiddleware",
    "client_certificate",
    "request_url",
    "send_resource_metadata",
]

CLAIMS_SCOPE_KEY = "warden.claims"
CLAIMS_STATE_KEY = "warden_claims"
RESOURCE_METADATA_SCOPE_KEY = "warden.resource_metadata"
"""Where the middleware leaves the metadata URL for later layers (the FastAPI dependency's challenges)."""


def request_url(scope: Scope, public_url: str | None = None) -> str:
    """The absolute URI of an ASGI request (with its query), as the client addressed it."""
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) and raw_path else scope.get("path", "/")
    path = path.split("?", 1)[0]
    query = scope.get("query_string", b"")
    suffix = "?" + query.decode("latin-1") if query else ""
    if public_url:
        return public_url.rstrip("/") + path + suffix
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
    host = None
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1")
            break
    if host is None:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "localhost"
    return f"{scheme}://{host}{path}{suffix}"


def client_certificate(scope: Scope, header: bytes | None = None) -> CertificateInput | None:
    """The TLS client certificate of a request (RFC 8705 §3).

    From the header named `header` (lower-case bytes) when given, which only a
    trusted TLS-terminating proxy may set; otherwise from the ASGI TLS extension.
    """
    if header is not None:
        for name, value in scope.get("headers", ()):
            if name == header:
                try:
                    return parse_client_cert_header(value.decode("latin-1"))
                except ValueError:
                    return None
        return None
    tls = scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or ()
    return chain[0] if chain and isinstance(chain[0], (str, bytes)) else None


class AccessTokenMiddleware:
    """Validate access tokens before the application sees a request.

    Args:
        app: the ASGI application to protect.
        validator: the `Validator` for this resource server.
        scopes: scopes every request needs (routes can require more with
            `warden.resource.fastapi.require_scopes`).
        realm: protection space named in `WWW-Authenticate`.
        exclude_paths: exact paths served without a token (e.g. health checks).
        optional: let requests without any credentials through with no claims;
            presented credentials are still validated.
        public_url: scheme, host and path prefix clients use, when a proxy rewrites them.
        client_cert_header: name of the header a trusted TLS proxy sets with the
            client certificate (RFC 9440 `Client-Cert` or URL-encoded PEM).
        resource_metadata: serve this RFC 9728 document at its well-known path and name it
            in challenges; `True` builds it from the validator (`resource` = its audience,
            `authorization_servers` = its issuer, its DPoP algorithms, `scopes` as
            `scopes_supported`).
    """

    def __init__(
        self,
        app: ASGIApp,
        validator: Validator,
        *,
        scopes: Iterable[str] = (),
        realm: str | None = None,
        exclude_paths: Collection[str] = (),
        optional: bool = False,
        public_url: str | None = None,
        client_cert_header: str | None = None,
        resource_metadata: ProtectedResourceMetadata | bool | None = None,
    ) -> None:
        self.app = app
        self.validator = validator
        self.scopes = tuple(scopes)
        self.realm = realm
        self.exclude_paths = frozenset(exclude_paths)
        self.optional = optional
        self.public_url = public_url
        self.client_cert_header = client_cert_header.lower().encode("latin-1") if client_cert_header else None
        if resource_metadata is True:
            resource_metadata = ProtectedResourceMetadata.for_validator(validator, scopes_supported=self.scopes)
        self.resource_metadata = resource_metadata or None
        self._metadata_url = self.resource_metadata.url if self.resource_metadata else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metadata = self.resource_metadata
        if metadata is not None and scope["type"] == "http" and scope.get("path") == metadata.path:
            await send_resource_metadata(metadata, scope, send)
            return
        if scope["type"] not in ("http", "websocket") or scope.get("path") in self.exclude_paths:
            await self.app(scope, receive, send)
            return
        if self._metadata_url is not None:
            scope[RESOURCE_METADATA_SCOPE_KEY] = self._metadata_url
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ())]
        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        try:
            claims: Claims | None = await avalidate_request(
                self.validator, method=method, url=request_url(scope, self.public_url), headers=headers,
                client_certificate=client_certificate(scope, self.client_cert_header), scopes=self.scopes,
            )
        except OAuthError as error:
            if not (self.optional and isinstance(error, InvalidToken) and error.reason == MISSING_TOKEN):
                await self._refuse(error, presented_scheme(headers), scope, receive, send)
                return
            claims = None
        # None (anonymous, optional mode) is stored too: it tells later layers the middleware ran.
        scope[CLAIMS_SCOPE_KEY] = claims
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state[CLAIMS_STATE_KEY] = claims
        await self.app(scope, receive, send)

    async def _refuse(self, error: OAuthError, scheme: Scheme, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})  # RFC 6455 §7.4.1 policy violation
            return
        response = error_response(self.validator, error, scheme=scheme, realm=self.realm, scopes=self.scopes,
                                  resource_metadata=self._metadata_url)
        await send({
            "type": "http.response.start",
            "status": response.status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
                       + [(b"content-length", str(len(response.body)).encode())],
        })
        await send({"type": "http.response.body", "body": response.body})


async def send_resource_metadata(metadata: ProtectedResourceMetadata, scope: Scope, send: Send) -> None:
    """Answer an HTTP request at the metadata path: the document for GET/HEAD (§3.2), else 405."""
    method = scope.get("method", "GET")
    if method in ("GET", "HEAD"):
        status, headers, body = metadata.render()
    else:
        status, headers, body = 405, (("allow", "GET, HEAD"),), b""
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
                   + [(b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
