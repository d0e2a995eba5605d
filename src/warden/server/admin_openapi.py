"""OpenAPI 3.1 description of the admin API, served at /admin/v1/openapi.json.

Built from the admin API's own route table and the schemas its validator enforces
(admin_schema.py), so every route, path parameter, query parameter and request body
described here is the one the server checks.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from warden.server.admin_extra import extra_paths
from warden.server.admin_schema import (
    API_CREATE,
    API_IN,
    API_OUT,
    APPLY_IN,
    APPLY_OUT,
    CLIENT_APPROVE,
    CLIENT_CREATE,
    CLIENT_OUT,
    CLIENT_PATCH,
    EXPORT_OUT,
    KEY_OUT,
    KEYS_ROTATE,
    PROBLEM,
    REGISTRATION_TOKEN_CREATE,
    REGISTRATION_TOKEN_OUT,
    SECRET_OUT,
    SECRET_ROTATE,
    TOKENS_REVOKE,
)

__all__ = ["OPENAPI"]

_PROBLEM_REF = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_ERRORS = {"400": "invalid request", "401": "no active admin token", "403": "insufficient scope, or outside the caller's tenant",
           "404": "not found", "409": "conflict with the stored state", "503": "the store is unavailable"}


def _page(item: str) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "next_cursor"], "properties": {
        "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
        "next_cursor": {"type": ["string", "null"], "description": "pass as cursor for the next page"}}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _op(op_id: str, summary: str, scope: str, ok: str, out: dict[str, Any] | None, *,
        body: dict[str, Any] | None = None, query: dict[str, Any] | None = None,
        errors: tuple[str, ...] = ("400", "401", "403", "404", "503")) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "success"}}
    if out is not None:
        responses[ok]["content"] = _json(out)
    for code in errors:
        responses[code] = {"description": _ERRORS[code], "content": _PROBLEM_REF}
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "security": [{"wardenToken": [scope]}],
                          "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(copy.deepcopy(body))}
    if query:
        op["parameters"] = [{"name": name, "in": "query", "required": False, "schema": copy.deepcopy(schema)}
                            for name, schema in query.items()]
    return op


def _path(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
             **({"description": "the API identifier, percent-encoded"} if n == "identifier" else {})}
            for n in names]


def OPENAPI(issuer: str) -> dict[str, Any]:
    from warden.server.admin_api import QUERIES, ROUTES

    handlers = {r.handler.__name__: r for r in ROUTES}
    query = {name.lstrip("_"): QUERIES[handlers[name].handler] for name in
             ("_list_apis", "_list_clients", "_list_secrets", "_list_keys", "_list_registration_tokens")}
    read, write = "warden:admin:read", "warden:admin"
    ref = {name: {"$ref": f"#/components/schemas/{name}"} for name in ("Api", "Client", "Secret", "Key",
                                                                       "RegistrationToken")}
    new_secret = {"type": "object", "required": ["client_id", "secret_id", "client_secret"], "properties": {
        "client_id": {"type": "string"}, "secret_id": {"type": "string"}, "client_secret": {"type": "string"}}}
    revoked = {"type": "object", "properties": {"revoked_jti": {"type": "string"}, "client_id": {"type": "string"},
                                                "revoked_before": {"type": ["string", "null"]}}}
    activated = {"type": "object", "required": ["activated"],
                 "properties": {"activated": {"type": "array", "items": {"type": "string"}}}}
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Warden admin API", "version": "1", "description": (
            "An admin client with a tenant acts within that tenant only: other tenants' clients are absent "
            "from lists and answer 404; naming another tenant (or none) for a client or an API answers 403; "
            "it sees shared APIs and its tenant's, changes only its tenant's, and can grant only those; signing "
            "keys are read-only to it and it revokes tokens by client_id only (403 for jti).")},
        "servers": [{"url": f"{issuer}/admin/v1"}],
        "components": {
            "securitySchemes": {"wardenToken": {"type": "oauth2", "description": (
                f"a Warden access token whose sole audience is {issuer}/admin/v1: request it with "
                f"resource={issuer}/admin/v1 and no other resource"), "flows": {"clientCredentials": {
                    "tokenUrl": f"{issuer}/oauth2/token", "scopes": {write: "every operation",
                                                                      read: "read only"}}}}},
            "schemas": {"Problem": PROBLEM, "Api": API_OUT, "Client": CLIENT_OUT, "Secret": SECRET_OUT,
                        "Key": KEY_OUT, "RegistrationToken": REGISTRATION_TOKEN_OUT},
        },
        "paths": {
            "/apis": {"get": _op("listApis", "list APIs", read, "200", _page("Api"), query=query["list_apis"]),
                      "post": _op("createApi", "register a new API (409 if the identifier exists; change it with "
                                  "PUT)", write, "201", ref["Api"], body=API_CREATE,
                                  errors=("400", "401", "403", "409", "503"))},
            "/apis/{identifier}": {
                "parameters": _path("identifier"),
                "get": _op("getApi", "show an API", read, "200", ref["Api"], errors=("401", "403", "404", "503")),
                "put": _op("putApi", "create or update an API", write, "200", ref["Api"], body=API_IN,
                           errors=("400", "401", "403", "409", "503")),
                "delete": _op("deleteApi", "delete an API no client is granted", write, "204", None,
                              errors=("401", "403", "404", "409", "503"))},
            "/clients": {
                "get": _op("listClients", "list clients, filtered", read, "200", _page("Client"),
                           query=query["list_clients"]),
                "post": _op("createClient", "register a client; a secret is returned once", write, "201",
                            ref["Client"], body=CLIENT_CREATE, errors=("400", "401", "403", "409", "503"))},
            "/clients/{client_id}": {
                "parameters": _path("client_id"),
                "get": _op("getClient", "show a client", read, "200", ref["Client"],
                           errors=("401", "403", "404", "503")),
                "patch": _op("updateClient", "change a client", write, "200", ref["Client"], body=CLIENT_PATCH),
                "delete": _op("deleteClient", "delete a client", write, "204", None,
                              errors=("401", "403", "404", "503"))},
            "/clients/{client_id}/approve": {
                "parameters": _path("client_id"),
                "post": _op("approveClient", "let a client registered with approval authenticate", write, "200",
                            ref["Client"], body=CLIENT_APPROVE, errors=("400", "401", "403", "404", "503"))},
            "/registration-tokens": {
                "get": _op("listRegistrationTokens", "list initial access tokens (never their values)", read, "200",
                           _page("RegistrationToken"), query=query["list_registration_tokens"]),
                "post": _op("createRegistrationToken", "make an initial access token for POST /oauth2/register "
                            "(RFC 7591); its value is returned once", write, "201", ref["RegistrationToken"],
                            body=REGISTRATION_TOKEN_CREATE, errors=("400", "401", "403", "503"))},
            "/registration-tokens/{token_id}": {
                "parameters": _path("token_id"),
                "delete": _op("revokeRegistrationToken", "revoke an initial access token", write, "204", None,
                              errors=("401", "403", "404", "503"))},
            "/clients/{client_id}/secrets": {
                "parameters": _path("client_id"),
                "get": _op("listSecrets", "list secrets (metadata only)", read, "200", _page("Secret"),
                           query=query["list_secrets"]),
                "post": _op("rotateSecret", "rotate: add a secret, older ones expire after grace", write, "201",
                            new_secret, body=SECRET_ROTATE)},
            "/clients/{client_id}/secrets/{secret_id}": {
                "parameters": _path("client_id", "secret_id"),
                "delete": _op("revokeSecret", "revoke a secret", write, "204", None,
                              errors=("401", "403", "404", "503"))},
            "/keys": {"get": _op("listKeys", "list signing keys", read, "200", _page("Key"),
                                 query=query["list_keys"])},
            "/keys/rotate": {"post": _op("rotateKeys", "rotate signing keys", write, "200", activated,
                                         body=KEYS_ROTATE, errors=("400", "401", "403", "503"))},
            "/tokens/revoke": {"post": _op("revokeTokens", "revoke a token by jti, or every token of a client",
                                           write, "200", revoked, body=TOKENS_REVOKE)},
            "/export": {"get": _op("exportDocument", "the store as an apply document (what `warden export` "
                                   "writes as TOML)", read, "200", EXPORT_OUT, errors=("401", "403", "503"))},
            "/apply": {"post": _op("applyDocument", "make APIs and clients match a document, all or nothing in "
                                   "one transaction (what `warden apply` does)", write, "200", APPLY_OUT,
                                   body=APPLY_IN, errors=("400", "401", "403", "404", "409", "503"))},
            **extra_paths(_op, read),
        },
    }
    for path, ops in doc["paths"].items():  # path parameters on each operation (path-level ones are valid
        names = re.findall(r"\{(\w+)\}", path)  # too, but per-operation lists read better in the reference)
        params = ops.pop("parameters", [])
        assert [p["name"] for p in params] == names, path
        for op in ops.values():
            op["parameters"] = copy.deepcopy(params) + op.get("parameters", [])
    return doc
