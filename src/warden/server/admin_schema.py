"""Request and response schemas of the admin API, and the validator that enforces the request ones.

The same dictionaries are the JSON Schemas (2020-12, the dialect of OpenAPI 3.1) published in
/admin/v1/openapi.json and the rules `validate_body` applies before a handler runs, so the
contract and the server's behaviour cannot disagree. `validate_body` implements the subset
of JSON Schema these schemas use: type, enum, const, minimum/maximum (and exclusive),
minLength/maxLength, pattern, minItems/maxItems, items, properties, required,
additionalProperties (false or a schema), maxProperties, oneOf. Booleans are not numbers, and numbers must be finite.
"""

from __future__ import annotations

import math
import re
from typing import Any

from warden.core.algorithms import SIGNING_ALGS
from warden.core.client import AuthMethod
from warden.errors import ConfigError

__all__ = [
    "API_CREATE",
    "API_IN",
    "API_OUT",
    "APPLY_IN",
    "APPLY_OUT",
    "CLIENT_APPROVE",
    "CLIENT_CREATE",
    "CLIENT_OUT",
    "CLIENT_PATCH",
    "EXPORT_OUT",
    "KEYS_ROTATE",
    "KEY_OUT",
    "PROBLEM",
    "REGISTRATION_TOKEN_CREATE",
    "REGISTRATION_TOKEN_OUT",
    "SECRET_OUT",
    "SECRET_ROTATE",
    "TOKENS_REVOKE",
    "Schema",
    "validate_body",
]

Schema = dict[str, Any]

_DURATION: Schema = {"oneOf": [
    {"type": "integer", "minimum": 0, "maximum": 999_999_999},
    {"type": "string", "pattern": r"^\s*\d{1,9}\s*[smhdw]?\s*$", "maxLength": 32},
], "description": "seconds, or a number with unit s, m, h, d or w (e.g. 15m)"}
_ID = r"^[A-Za-z0-9._~-]{1,128}$"
_TENANT = r"^[A-Za-z0-9._~-]{1,64}$"
_STR_LIST: Schema = {"type": "array", "minItems": 1, "maxItems": 100,
                     "items": {"type": "string", "minLength": 1, "maxLength": 200}}
_GRANT: Schema = {"type": "object", "required": ["api", "scopes"], "additionalProperties": False,
                  "properties": {"api": {"type": "string", "minLength": 1, "maxLength": 2048}, "scopes": _STR_LIST}}
_GRANT_LIST: Schema = {"type": "array", "maxItems": 100, "items": _GRANT}
_METADATA: Schema = {"type": ["object", "null"], "description": (
    "jwks | jwks_uri | federated | dpop_bound_access_tokens | tls_client_auth_* | "
    "tls_client_certificate_bound_access_tokens | token_exchange (checked by the server's client-metadata rules)"),
    "properties": {"token_exchange": {"type": "boolean", "description": "may use the token exchange grant (RFC 8693)"}}}
_CLIENT_FIELDS: dict[str, Schema] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "grants": {"type": "array", "maxItems": 100, "items": _GRANT},
    "auth_method": {"type": "string", "enum": [m.value for m in AuthMethod]},
    "tenant": {"type": ["string", "null"], "pattern": _TENANT, "description": (
        "omitted on create: the caller's tenant (none for a global admin); a tenant admin cannot name another "
        "tenant or null (403)")},
    "enabled": {"type": "boolean"},
    "rate_limit": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1_000_000,
                   "description": "token requests per second; null for the server's default"},
    "metadata": _METADATA,
    "allowed_ips": {"type": "array", "maxItems": 64, "items": {"type": "string", "minLength": 1, "maxLength": 64},
                    "description": "CIDR networks the client may authenticate from (empty: anywhere); the source "
                                   "is the TCP peer, or X-Forwarded-For from server.trusted_proxies"},
    "max_token_lifetime": {"oneOf": [{"type": "null"}, *_DURATION["oneOf"]],
                           "description": "caps every API's token lifetime for this client (60s to 1d); null: "
                                          "no cap"},
}
CLIENT_CREATE: Schema = {"type": "object", "required": ["name"], "additionalProperties": False,
                         "properties": {**_CLIENT_FIELDS, "client_id": {"type": "string", "pattern": _ID}}}
CLIENT_PATCH: Schema = {"type": "object", "additionalProperties": False, "properties": dict(_CLIENT_FIELDS)}
API_IN: Schema = {"type": "object", "required": ["scopes"], "additionalProperties": False, "properties": {
    "scopes": _STR_LIST, "ttl": _DURATION, "alg": {"type": "string", "enum": list(SIGNING_ALGS)},
    "name": {"type": "string", "maxLength": 200}, "dpop_required": {"type": "boolean"},
    "cert_bound": {"type": "boolean"},
    "tenant": {"type": ["string", "null"], "pattern": _TENANT, "description": (
        "the tenant the API belongs to (only its clients can be granted it); null: shared by every tenant. "
        "Omitted: an existing API keeps its tenant, a new one gets the caller's (none for a global admin)")}}}
API_CREATE: Schema = {**API_IN, "required": ["identifier", "scopes"], "properties": {
    "identifier": {"type": "string", "minLength": 1, "maxLength": 2048}, **API_IN["properties"]}}
_APPLY_API: Schema = {"type": "object", "description": "an [[apis]] table of the apply file"}
_APPLY_CLIENT: Schema = {"type": "object", "description": "a [[clients]] table of the apply file"}
_APPLY_DOCUMENT: Schema = {"type": "object", "additionalProperties": False, "properties": {
    "apis": {"type": "array", "maxItems": 1000, "items": _APPLY_API},
    "clients": {"type": "array", "maxItems": 10000, "items": _APPLY_CLIENT}},
    "description": "the content of a `warden apply` file as JSON (the keys of its tables are checked by the "
                   "server's apply rules)"}
APPLY_IN: Schema = {"type": "object", "required": ["document"], "additionalProperties": False, "properties": {
    "document": _APPLY_DOCUMENT,
    "prune": {"type": "boolean", "description": "delete clients and APIs the document does not list (never "
                                                "the built-in admin API)"},
    "dry_run": {"type": "boolean", "description": "check everything and answer the changes, writing nothing"},
    "secrets": {"type": "object", "maxProperties": 10000, "additionalProperties": {
        "type": "string", "minLength": 32, "maxLength": 512},
        "description": "client_id -> the secret a new client gets instead of a generated one"}}}
SECRET_ROTATE: Schema = {"type": "object", "additionalProperties": False, "properties": {"grace": _DURATION}}
KEYS_ROTATE: Schema = {"type": "object", "additionalProperties": False, "properties": {
    "algs": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(SIGNING_ALGS)}}}}
TOKENS_REVOKE: Schema = {"oneOf": [
    {"type": "object", "required": ["jti"], "additionalProperties": False,
     "properties": {"jti": {"type": "string", "minLength": 1, "maxLength": 256}}},
    {"type": "object", "required": ["client_id"], "additionalProperties": False,
     "properties": {"client_id": {"type": "string", "pattern": _ID}}},
]}

CLIENT_APPROVE: Schema = {"type": "object", "additionalProperties": False, "properties": {},
                          "description": "empty, or no body at all"}
REGISTRATION_TOKEN_CREATE: Schema = {"type": "object", "required": ["grants"], "additionalProperties": False,
                                     "properties": {
    "grants": {**_GRANT_LIST, "minItems": 1, "description": "the most a registered client may get"},
    "max_uses": {"type": ["integer", "null"], "minimum": 1, "maximum": 1_000_000},
    "ttl": {"oneOf": [{"type": "null"}, *_DURATION["oneOf"]], "description": "how long it may be used"},
    "tenant": {"type": ["string", "null"], "pattern": _TENANT},
    "approval": {"type": "boolean", "description": "registered clients wait for POST /clients/{id}/approve"}}}

# responses ---------------------------------------------------------------------------------
_TIME: Schema = {"type": ["string", "null"], "description": "RFC 3339 UTC time"}
API_OUT: Schema = {"type": "object", "required": ["identifier", "scopes", "ttl", "alg"], "properties": {
    "identifier": {"type": "string"}, "name": {"type": "string"}, "scopes": {"type": "array", "items": {
        "type": "string"}}, "ttl": {"type": "integer"}, "alg": {"type": "string"},
    "dpop_required": {"type": "boolean"}, "cert_bound": {"type": "boolean"}, "created_at": _TIME,
    "tenant": {"type": ["string", "null"], "description": "null: a shared API"},
    "changed": {"type": "boolean"}}}
CLIENT_OUT: Schema = {"type": "object", "required": ["client_id", "name", "enabled", "auth_method"], "properties": {
    "client_id": {"type": "string"}, "name": {"type": "string"}, "enabled": {"type": "boolean"},
    "auth_method": {"type": "string"}, "tenant": {"type": ["string", "null"]},
    "rate_limit": {"type": ["number", "null"]},
    "grants": {"type": "array", "items": {"type": "object", "properties": {
        "api": {"type": "string"}, "scopes": {"type": "array", "items": {"type": "string"}},
        "default": {"type": "boolean"}}}},
    "tokens_revoked_before": _TIME, "created_at": _TIME, "metadata": {"type": "object"},
    "allowed_ips": {"type": "array", "items": {"type": "string"}},
    "max_token_lifetime": {"type": ["integer", "null"], "description": "seconds"},
    "pending_approval": {"type": "boolean", "description": "registered with approval and not yet approved"},
    "changed": {"type": "boolean"},
    "client_secret": {"type": "string", "description": "only in the answer that created it"},
    "secret_id": {"type": "string"}}}
SECRET_OUT: Schema = {"type": "object", "required": ["secret_id", "state"], "properties": {
    "secret_id": {"type": "string"}, "state": {"type": "string"}, "hint": {"type": "string"},
    "created_at": _TIME, "expires_at": _TIME, "revoked_at": _TIME, "last_used_at": _TIME}}
KEY_OUT: Schema = {"type": "object", "required": ["kid", "alg", "state"], "properties": {
    "kid": {"type": "string"}, "alg": {"type": "string"}, "state": {"type": "string"},
    "created_at": _TIME, "activated_at": _TIME, "retired_at": _TIME,
    "backend": {"type": "string", "description": "where the private key lives: database or pkcs11 (keys.backend)"}}}
REGISTRATION_TOKEN_OUT: Schema = {"type": "object", "required": ["token_id", "state", "grants"], "properties": {
    "token_id": {"type": "string"}, "state": {"type": "string", "enum": ["active", "expired", "revoked", "used_up"]},
    "grants": {"type": "array", "items": {"type": "object", "properties": {
        "api": {"type": "string"}, "scopes": {"type": "array", "items": {"type": "string"}}}}},
    "tenant": {"type": ["string", "null"]}, "approval": {"type": "boolean"}, "uses": {"type": "integer"},
    "max_uses": {"type": ["integer", "null"]}, "expires_at": _TIME, "created_at": _TIME, "revoked_at": _TIME,
    "created_by": {"type": "string"},
    "initial_access_token": {"type": "string", "description": "only in the answer that created it"}}}
APPLY_OUT: Schema = {"type": "object", "required": ["changes", "dry_run", "secrets"], "properties": {
    "changes": {"type": "array", "items": {"type": "string"}, "description": "one line per change, in order"},
    "dry_run": {"type": "boolean"},
    "secrets": {"type": "array", "description": "secrets of new clients (none on a dry run), shown once",
                "items": {"type": "object", "required": ["client_id", "secret_id", "client_secret"], "properties": {
                    "client_id": {"type": "string"}, "secret_id": {"type": "string"},
                    "client_secret": {"type": "string"}}}}}}
EXPORT_OUT: Schema = {"type": "object", "required": ["apis", "clients"], "properties": {
    "apis": {"type": "array", "items": _APPLY_API}, "clients": {"type": "array", "items": _APPLY_CLIENT}},
    "description": "the store as an apply document (no secrets; the built-in admin API left out): POST it "
                   "to /apply to get the same store"}
PROBLEM: Schema = {"type": "object", "required": ["type", "title", "status"], "properties": {
    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
    "detail": {"type": "string"}, "error": {"type": "string", "description": "the OAuth-style error code"}},
    "description": "RFC 9457 problem details"}

# validation --------------------------------------------------------------------------------
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, _TYPES[name])


def _problem(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where or 'body'}: {message}")


def validate_body(schema: Schema, value: Any, where: str = "") -> None:
    """Raise ConfigError naming the first field of `value` that `schema` refuses."""
    if "oneOf" in schema:
        errors = []
        for option in schema["oneOf"]:
            try:
                validate_body(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
            else:
                break
        else:
            raise ConfigError(errors[0] if len(errors) == 1 else
                              f"{where or 'body'}: matches none of the allowed forms ({'; '.join(errors)})")
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is_type(value, n) for n in names):
            raise _problem(where, f"expected {' or '.join(names)}")
    if value is None:
        return
    if "enum" in schema and value not in schema["enum"]:
        raise _problem(where, f"expected one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise _problem(where, f"must be at least {schema['minimum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise _problem(where, f"must be greater than {schema['exclusiveMinimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise _problem(where, f"must be at most {schema['maximum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise _problem(where, f"must be at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise _problem(where, f"must be at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise _problem(where, "has an invalid form")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise _problem(where, f"needs at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise _problem(where, f"allows at most {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                validate_body(schema["items"], item, f"{where}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise _problem(f"{where}.{name}" if where else name, "is required")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            raise _problem(where, f"allows at most {schema['maxProperties']} fields")
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            path = f"{where}.{name}" if where else str(name)
            if name in properties:
                validate_body(properties[name], item, path)
            elif extra is False:
                raise _problem(path, "unknown field")
            elif isinstance(extra, dict):
                validate_body(extra, item, path)
