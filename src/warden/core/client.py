"""Clients and their grants (entitlements: client x API x allowed scopes)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from warden.core.client_metadata import ClientMetadata

__all__ = ["SECRET_METHODS", "AuthMethod", "Client", "Grant", "validate_client_id", "validate_tenant"]


class AuthMethod(str, Enum):
    """Token endpoint authentication methods (RFC 7591 §2 names)."""

    CLIENT_SECRET_BASIC = "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post"
    PRIVATE_KEY_JWT = "private_key_jwt"
    TLS_CLIENT_AUTH = "tls_client_auth"
    SELF_SIGNED_TLS_CLIENT_AUTH = "self_signed_tls_client_auth"


SECRET_METHODS = frozenset({AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST})

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
_TENANT = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    auth_method: AuthMethod = AuthMethod.CLIENT_SECRET_BASIC
    enabled: bool = True
    tenant: str | None = None
    rate_limit: float | None = None  # token requests per second; None = server default
    revoked_before: float | None = None  # tokens issued at or before this time are inactive
    created_at: float = 0.0
    metadata: ClientMetadata = field(default_factory=ClientMetadata)


@dataclass(frozen=True, slots=True)
class Grant:
    client_id: str
    api: str  # API identifier
    scopes: tuple[str, ...]
    position: int = 0  # the grant at position 0 is the client's default


def validate_client_id(client_id: str) -> None:
    # Unreserved characters only, so ids survive form-urlencoding and Basic auth unchanged.
    if not _CLIENT_ID.match(client_id):
        raise ValueError("client id must be 1-128 characters of A-Z a-z 0-9 . _ ~ -")


def validate_tenant(tenant: str) -> None:
    if not _TENANT.match(tenant):
        raise ValueError("tenant must be 1-64 characters of A-Z a-z 0-9 . _ ~ -")
