"""FastAPI dependency for scope-protected routes (RFC 6750 §3.1, RFC 9449 §7.1).

    from warden.resource.fastapi import require_scopes

    @app.get("/items")
    async def items(claims: Claims = Depends(require_scopes("read", validator=validator))): ...

With `AccessTokenMiddleware` installed, the dependency reuses the claims the
middleware validated and only checks the route's scopes; without it, pass
`validator=` and the dependency validates the request itself. Failures raise
`HTTPException` carrying the status, `WWW-Authenticate` (one field, with the
challenges comma-separated) and the rendered error object as `detail`.

Protected resource metadata (RFC 9728): `serve_resource_metadata(app, metadata)`
adds the §3 well-known route, and `require_scopes(..., resource_metadata=metadata)`
names it in challenges (§5.1); behind `AccessTokenMiddleware(resource_metadata=...)`
both come from the middleware.

This is the only module of `warden.resource` that imports FastAPI.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from warden.protocol.errors import InsufficientScope, InvalidToken, OAuthError
from warden.resource._render import MISSING_TOKEN, render_error
from warden.resource.asgi import (
    CLAIMS_SCOPE_KEY,
    RESOURCE_METADATA_SCOPE_KEY,
    client_certificate,
    request_url,
)
from warden.resource.claims import Claims
from warden.resource.metadata import ProtectedResourceMetadata
from warden.resource.request import avalidate_request, error_response, presented_scheme
from warden.resource.validator import Validator

__all__ = ["require_scopes", "serve_resource_metadata"]

# Declares the security scheme in the OpenAPI document; credentials are read by
# `warden.resource.request`, which also understands the DPoP scheme.
_CREDENTIALS = Depends(HTTPBearer(auto_error=False, bearerFormat="JWT"))


def require_scopes(
    *scopes: str,
    validator: Validator | None = None,
    realm: str | None = None,
    public_url: str | None = None,
    client_cert_header: str | None = None,
    resource_metadata: ProtectedResourceMetadata | None = None,
) -> Callable[..., Awaitable[Claims]]:
    """A dependency that yields the request's `Claims` if the token grants every one of `scopes`.

    Args:
        scopes: scopes the route needs.
        validator: validates the request when no `AccessTokenMiddleware` did.
        realm: protection space named in `WWW-Authenticate`.
        public_url: scheme, host and path prefix clients use, behind a rewriting proxy.
        client_cert_header: header a trusted TLS proxy sets with the client certificate.
        resource_metadata: named in `WWW-Authenticate` (RFC 9728 §5.1); serve it with
            `serve_resource_metadata`. Behind a middleware that has one, the middleware's is used.
    """
    required = tuple(scopes)
    cert_header = client_cert_header.lower().encode("latin-1") if client_cert_header else None
    own_metadata_url = resource_metadata.url if resource_metadata is not None else None

    async def dependency(
        request: Request,
        _credentials: HTTPAuthorizationCredentials | None = _CREDENTIALS,
    ) -> Claims:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope.get("headers", ())]
        claims = request.scope.get(CLAIMS_SCOPE_KEY)
        try:
            if isinstance(claims, Claims):
                if not claims.has_scopes(*required):
                    raise InsufficientScope("insufficient scope", reason="insufficient_scope")
                return claims
            if CLAIMS_SCOPE_KEY in request.scope:  # the middleware (optional mode) saw no credentials
                raise InvalidToken("access token required", reason=MISSING_TOKEN)
            if validator is None:
                raise RuntimeError("require_scopes needs validator= or AccessTokenMiddleware")
            return await avalidate_request(
                validator, method=request.method, url=request_url(request.scope, public_url),
                headers=headers, scopes=required, client_certificate=client_certificate(request.scope, cert_header),
            )
        except OAuthError as error:
            metadata_url = request.scope.get(RESOURCE_METADATA_SCOPE_KEY) or own_metadata_url
            raise _http_exception(validator, error, headers, realm, required, metadata_url) from None

    return dependency


def _http_exception(validator: Validator | None, error: OAuthError, headers: list[tuple[str, str]],
                    realm: str | None, scopes: tuple[str, ...], metadata_url: str | None) -> HTTPException:
    scheme = presented_scheme(headers)
    if validator is not None:
        response = error_response(validator, error, scheme=scheme, realm=realm, scopes=scopes,
                                  resource_metadata=metadata_url)
    else:
        response = render_error(error, realm=realm, scope=scopes, scheme=scheme, resource_metadata=metadata_url)
    detail = json.loads(response.body)
    kept = {name: value for name, value in response.headers if name in ("www-authenticate", "dpop-nonce",
                                                                       "retry-after", "cache-control")}
    return HTTPException(status_code=response.status, detail=detail, headers=kept)



def serve_resource_metadata(app: FastAPI, metadata: ProtectedResourceMetadata) -> None:
    """Serve `metadata` at its RFC 9728 §3 well-known path (GET and HEAD, no token needed)."""
    _, headers, body = metadata.render()

    async def protected_resource_metadata() -> Response:
        return Response(content=body, headers={k: v for k, v in headers if k != "content-type"},
                        media_type="application/json")

    app.add_api_route(metadata.path, protected_resource_metadata, methods=["GET", "HEAD"],
                      include_in_schema=False)
