"""Conversions between domain values and SQL rows, shared by every SqlStore method."""

from __future__ import annotations

import json
import sys
from functools import lru_cache

from sqlalchemy import Row

from warden.core.api import Api
from warden.core.client import AuthMethod, Client
from warden.core.client_metadata import parse_client_metadata, render_client_metadata
from warden.core.keys import KeyState, SigningKey
from warden.core.registration import ClientRegistration, PolicyGrant, RegistrationToken
from warden.core.secrets import ClientSecret

__all__ = [
    "api_from_row",
    "client_from_row",
    "client_values",
    "join_scopes",
    "key_from_row",
    "policy_json",
    "registration_from_row",
    "registration_token_from_row",
    "secret_from_row",
    "secret_values",
    "split_scopes",
]


def join_scopes(scopes: tuple[str, ...]) -> str:
    return " ".join(scopes)


@lru_cache(maxsize=4096)
def split_scopes(text: str) -> tuple[str, ...]:
    # Shared tuples and interned ids/identifiers: a registry of 100,000 clients holds each
    # API identifier, scope list and client id once, not once per row that mentions it.
    return tuple(sys.intern(s) for s in text.split())


def api_from_row(row: Row[object]) -> Api:
    m = row._mapping
    return Api(m["identifier"], split_scopes(m["scopes"]), m["token_ttl"], m["alg"], m["name"], m["created_at"],
               bool(m["dpop_required"]), bool(m["cert_bound"]), m["tenant"])


def client_values(client: Client) -> dict[str, object]:
    """Every column but created_at, which is set once on insert."""
    return {"client_id": client.client_id, "name": client.name, "auth_method": client.auth_method.value,
            "enabled": client.enabled, "tenant": client.tenant, "rate_limit": client.rate_limit,
            "revoked_before": client.revoked_before, "metadata": render_client_metadata(client.metadata)}


def client_from_row(row: Row[object]) -> Client:
    m = row._mapping
    return Client(sys.intern(m["client_id"]), m["name"], AuthMethod(m["auth_method"]), bool(m["enabled"]), m["tenant"],
                  m["rate_limit"], m["revoked_before"], m["created_at"],
                  parse_client_metadata(m["metadata"], allow_loopback_http=True))


def secret_values(secret: ClientSecret) -> dict[str, object]:
    return {"secret_id": secret.secret_id, "client_id": secret.client_id, "hash": secret.hash,
            "created_at": secret.created_at, "expires_at": secret.expires_at, "revoked_at": secret.revoked_at,
            "last_used_at": secret.last_used_at, "hint": secret.hint}


def secret_from_row(row: Row[object]) -> ClientSecret:
    m = row._mapping
    return ClientSecret(m["secret_id"], sys.intern(m["client_id"]), bytes(m["hash"]), m["created_at"], m["expires_at"],
                        m["revoked_at"], m["last_used_at"], m["hint"])


def key_from_row(row: Row[object]) -> SigningKey:
    m = row._mapping
    return SigningKey(m["kid"], m["alg"], KeyState(m["state"]), json.loads(m["public_jwk"]),
                      bytes(m["encrypted_private_key"]), m["created_at"], m["activated_at"], m["retired_at"])


def policy_json(grants: tuple[PolicyGrant, ...]) -> str:
    return json.dumps([[api, list(scopes)] for api, scopes in grants], separators=(",", ":"))


def _policy(text: str) -> tuple[PolicyGrant, ...]:
    return tuple((str(api), tuple(scopes)) for api, scopes in json.loads(text))


def registration_token_from_row(row: Row[object]) -> RegistrationToken:
    m = row._mapping
    return RegistrationToken(m["token_id"], bytes(m["hash"]), _policy(m["grants"]), m["created_at"], m["tenant"],
                             bool(m["approval"]), m["max_uses"], int(m["uses"]), m["expires_at"], m["revoked_at"],
                             m["created_by"])


def registration_from_row(row: Row[object]) -> ClientRegistration:
    m = row._mapping
    return ClientRegistration(m["client_id"], m["token_id"], bytes(m["access_token_hash"]), _policy(m["grants"]),
                              m["created_at"])
