"""OpenAPI 3.1 description of the admin API, served at /admin/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from warden.server.admin_extra import extra_paths

__all__ = ["OPENAPI"]

_ERROR = {"type": "object", "required": ["error"],
          "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}}}
_GRANT = {"type": "object", "required": ["api", "scopes"],
          "properties": {"api": {"type": "string"}, "scopes": {"type": "array", "items": {"type": "string"}}}}
_CLIENT_IN = {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
    "name": {"type": "string"}, "client_id": {"type": "string"}, "grants": {"type": "array", "items": _GRANT},
    "auth_method": {"enum": ["client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth",
                             "self_signed_tls_client_auth"]},
    "tenant": {"type": ["string", "null"]}, "enabled": {"type": "boolean"}, "rate_limit": {"type": ["number", "null"]},
    "metadata": {"type": "object", "description": "jwks | jwks_uri | federated | dpop_bound_access_tokens | "
                                                  "tls_client_auth_* | tls_client_certificate_bound_access_tokens"}}}
_API_IN = {"type": "object", "required": ["scopes"], "properties": {
    "scopes": {"type": "array", "items": {"type": "string"}}, "ttl": {"type": ["string", "integer"]},
    "alg": {"enum": ["ES256", "RS256", "EdDSA"]}, "name": {"type": "string"}, "dpop_required": {"type": "boolean"},
    "cert_bound": {"type": "boolean"}}}


def _op(summary: str, scope: str, body: dict[str, Any] | None = None, status: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "security": [{"wardenToken": [scope]}], "responses": {
        status: {"description": "success"}, "400": {"description": "invalid request", "content": {
            "application/json": {"schema": _ERROR}}}, "401": {"description": "no active admin token"},
        "403": {"description": "insufficient scope"}, "404": {"description": "not found"}}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def OPENAPI(issuer: str) -> dict[str, Any]:
    read, write = "warden:admin:read", "warden:admin"
    return {
        "openapi": "3.1.0",
        "info": {"title": "Warden admin API", "version": "1"},
        "servers": [{"url": f"{issuer}/admin/v1"}],
        "components": {"securitySchemes": {"wardenToken": {"type": "oauth2", "description": (
            f"a Warden access token whose sole audience is {issuer}/admin/v1: request it with "
            f"resource={issuer}/admin/v1 and no other resource"), "flows": {"clientCredentials": {
            "tokenUrl": f"{issuer}/oauth2/token", "scopes": {write: "every operation", read: "read only"}}}}}},
        "paths": {
            "/apis": {"get": _op("list APIs", read)},
            "/apis/{identifier}": {"put": _op("create or update an API (identifier URL-encoded)", write, _API_IN),
                                   "delete": _op("delete an API no client is granted", write, status="204")},
            "/clients": {"get": _op("list clients", read),
                         "post": _op("register a client; a secret is returned once", write, _CLIENT_IN, "201")},
            "/clients/{client_id}": {"get": _op("show a client", read),
                                     "patch": _op("change a client", write, _CLIENT_IN),
                                     "delete": _op("delete a client", write, status="204")},
            "/clients/{client_id}/secrets": {"get": _op("list secrets (metadata only)", read),
                                             "post": _op("rotate: add a secret, older ones expire after grace",
                                                         write, {"type": "object", "properties": {
                                                             "grace": {"type": ["string", "integer"]}}}, "201")},
            "/clients/{client_id}/secrets/{secret_id}": {"delete": _op("revoke a secret", write, status="204")},
            "/keys": {"get": _op("list signing keys", read)},
            "/keys/rotate": {"post": _op("rotate signing keys", write, {"type": "object", "properties": {
                "algs": {"type": "array", "items": {"enum": ["ES256", "RS256", "EdDSA"]}}}})},
            "/tokens/revoke": {"post": _op("revoke a token by jti, or every token of a client", write, {
                "type": "object", "properties": {"jti": {"type": "string"}, "client_id": {"type": "string"}}})},
            **extra_paths(_op, read),
        },
    }
