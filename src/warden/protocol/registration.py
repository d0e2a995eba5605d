"""Dynamic client registration requests and responses (RFC 7591 §2, §3.1, §3.2; RFC 7592 §2.2, §3).

`parse_registration_request` turns the untrusted JSON body of `POST /oauth2/register` (and of an
RFC 7592 `PUT`) into a `RegistrationRequest`, or raises: `InvalidRequest` when the body is not one
JSON object (wrong content type, malformed or duplicated members), `InvalidClientMetadata`
(RFC 7591 §3.2.2) when a field has a value this server does not accept.

What this server registers: confidential clients of the client credentials grant, authenticated
with `client_secret_basic` (the default, §2), `client_secret_post` or `private_key_jwt` with
`jwks` or `jwks_uri` (checked by `core.client_metadata`). `grant_types` may only name
`client_credentials`; `response_types` and `redirect_uris`, which that grant does not use, must be
absent or empty. `scope` (§2) asks for scopes; `resources`, an extension in the manner of RFC 8707,
names the APIs (their identifiers) the client is for. `dpop_bound_access_tokens` is RFC 9449 §5.2.
Other members (`client_uri`, `contacts`, `software_id`...) are ignored, as §2 requires of members
a server does not understand; they are not stored, so they are not echoed back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warden.core.scope import parse_scope
from warden.protocol.errors import InvalidClientMetadata, InvalidRequest

__all__ = ["REGISTRABLE_AUTH_METHODS", "RegistrationRequest", "parse_registration_request",
           "render_client_information"]

REGISTRABLE_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
_MAX_NAME = 200
_MAX_RESOURCES = 20
_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    token_endpoint_auth_method: str = "client_secret_basic"
    client_name: str | None = None
    scopes: tuple[str, ...] | None = None
    resources: tuple[str, ...] | None = None
    metadata: Mapping[str, Any] | None = None  # jwks / jwks_uri / dpop_bound_access_tokens, for core.client_metadata
    client_id: str | None = None  # RFC 7592 §2.2: a PUT names the client it updates
    client_secret: str | None = None  # ... and, if it sends one, the secret must be the current one

    def __repr__(self) -> str:  # never the secret
        return (f"RegistrationRequest(method={self.token_endpoint_auth_method!r}, scopes={self.scopes!r}, "
                f"resources={self.resources!r})")


def _refuse(description: str) -> InvalidClientMetadata:
    return InvalidClientMetadata(description, reason="client_metadata")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate member {key}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any, limit: int) -> bool:
    """Whether `value` nests no deeper than `limit` (bounded before anything walks it)."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return True


def _string_list(data: Mapping[str, Any], name: str) -> list[str] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _refuse(f"{name} must be an array of strings")
    return value


def parse_registration_request(body: bytes, content_type: bytes | None) -> RegistrationRequest:
    """Parse a registration (or RFC 7592 update) request body; raise InvalidRequest or InvalidClientMetadata."""
    if (content_type or b"").split(b";", 1)[0].strip().lower() != b"application/json":
        raise InvalidRequest("content type must be application/json", reason="bad_content_type")  # RFC 7591 §3.1
    try:
        data = json.loads(body.decode("utf-8"), object_pairs_hook=_unique_object, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest("request body must be one JSON object without repeated members",
                             reason="bad_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", reason="bad_json")
    if not _depth(data, _MAX_DEPTH):
        raise InvalidRequest("request body is nested too deeply", reason="bad_json")

    method = data.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in REGISTRABLE_AUTH_METHODS:
        raise _refuse("token_endpoint_auth_method must be one of " + ", ".join(REGISTRABLE_AUTH_METHODS))
    grant_types = _string_list(data, "grant_types")
    if grant_types is not None and (not grant_types or set(grant_types) != {"client_credentials"}):
        raise _refuse("grant_types may only be client_credentials")
    for unused in ("response_types", "redirect_uris"):
        if _string_list(data, unused):
            raise _refuse(f"{unused} are not used by the client credentials grant; leave them empty")
    name = data.get("client_name")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME):
        raise _refuse(f"client_name must be 1-{_MAX_NAME} characters")
    scopes = None
    if data.get("scope") is not None:
        if not isinstance(data["scope"], str):
            raise _refuse("scope must be a string of space-separated scope values")
        try:
            scopes = parse_scope(data["scope"])
        except ValueError:
            raise _refuse("scope is malformed (RFC 6749 §3.3)") from None
    resources = _string_list(data, "resources")
    if resources is not None and not 0 < len(resources) <= _MAX_RESOURCES:
        raise _refuse(f"resources must list 1-{_MAX_RESOURCES} API identifiers")
    metadata = {k: data[k] for k in ("jwks", "jwks_uri", "dpop_bound_access_tokens") if data.get(k) is not None}
    has_keys = "jwks" in metadata or "jwks_uri" in metadata
    if method == "private_key_jwt" and not has_keys:
        raise _refuse("private_key_jwt needs jwks or jwks_uri")
    if method != "private_key_jwt" and has_keys:
        raise _refuse(f"{method} clients authenticate with a secret; jwks and jwks_uri are for private_key_jwt")
    client_id, client_secret = data.get("client_id"), data.get("client_secret")
    if client_id is not None and not isinstance(client_id, str):
        raise _refuse("client_id must be a string")
    if client_secret is not None and not isinstance(client_secret, str):
        raise _refuse("client_secret must be a string")
    return RegistrationRequest(method, name, scopes, tuple(dict.fromkeys(resources)) if resources else None,
                               metadata, client_id, client_secret)


def render_client_information(*, client_id: str, issued_at: float, auth_method: str, client_name: str,
                              grants: list[tuple[str, tuple[str, ...]]], metadata: Mapping[str, Any],
                              registration_access_token: str, registration_client_uri: str,
                              client_secret: str | None = None) -> dict[str, Any]:
    """The client information response (RFC 7591 §3.2.1, RFC 7592 §3): what is registered, plus the
    credentials. `client_secret` only when one was just issued (only its hash is kept); then
    `client_secret_expires_at` is 0, "never" (§3.2.1)."""
    scopes: list[str] = []
    for _, granted in grants:
        scopes.extend(s for s in granted if s not in scopes)
    body: dict[str, Any] = {"client_id": client_id, "client_id_issued_at": int(issued_at)}
    if client_secret is not None:
        body |= {"client_secret": client_secret, "client_secret_expires_at": 0}
    body |= {"registration_access_token": registration_access_token,
             "registration_client_uri": registration_client_uri,
             "token_endpoint_auth_method": auth_method, "grant_types": ["client_credentials"],
             "client_name": client_name, "scope": " ".join(scopes), "resources": [api for api, _ in grants]}
    for name in ("jwks", "jwks_uri"):
        if metadata.get(name) is not None:
            body[name] = metadata[name]
    if metadata.get("dpop_bound_access_tokens"):
        body["dpop_bound_access_tokens"] = True
    return body
