"""Authorization server metadata (RFC 8414 §2), served at /.well-known/oauth-authorization-server."""

from __future__ import annotations

from typing import Any

from warden.core.api import SIGNING_ALGS
from warden.protocol.client_credentials import GRANT_TYPES

__all__ = ["render_metadata"]


def render_metadata(issuer: str, scopes: list[str], supported_auth_methods: list[str],
                    assertion_algs: list[str], grant_types: list[str] | None = None) -> dict[str, Any]:
    """`grant_types`: those the server serves (default: every registered one, `GRANT_TYPES`)."""
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth2/token",
        "jwks_uri": f"{issuer}/oauth2/jwks",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "grant_types_supported": sorted(GRANT_TYPES if grant_types is None else grant_types),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": supported_auth_methods,
        "introspection_endpoint_auth_methods_supported": supported_auth_methods,
        "revocation_endpoint_auth_methods_supported": supported_auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "scopes_supported": scopes,
        "access_token_signing_alg_values_supported": list(SIGNING_ALGS),
    }
