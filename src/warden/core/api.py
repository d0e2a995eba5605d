"""APIs (resource servers): identifier URI used as token audience, scopes, lifetime, algorithm."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from warden.core.algorithms import DEFAULT_ALG, SIGNING_ALGS
from warden.core.client import validate_tenant
from warden.core.durations import MAX_TTL, MIN_TTL
from warden.core.scope import is_scope_token

__all__ = ["DEFAULT_ALG", "RESERVED_SCOPE_PREFIX", "SIGNING_ALGS", "Api", "is_reserved_scope",
           "validate_api", "validate_identifier"]

# Scope names of Warden's own admin API (`warden:admin`, `warden:admin:read`). The server registers
# that API itself; no API defined by an operator may use the prefix, so a scope of that name always
# means the admin API's.
RESERVED_SCOPE_PREFIX = "warden:"


@dataclass(frozen=True, slots=True)
class Api:
    identifier: str
    scopes: tuple[str, ...]
    token_ttl: int = 900
    alg: str = DEFAULT_ALG
    name: str = ""
    created_at: float = 0.0
    dpop_required: bool = False  # tokens for this API are issued only against a DPoP proof (RFC 9449)
    cert_bound: bool = False  # tokens for this API are bound to the client certificate (RFC 8705 §3)
    tenant: str | None = None  # None: shared by every tenant; else only that tenant's clients are granted it


def validate_identifier(identifier: str) -> None:
    """RFC 8707 §2: an absolute URI without a fragment."""
    if len(identifier) > 512:
        raise ValueError("API identifier is longer than 512 characters")
    try:
        parts = urlsplit(identifier)
    except ValueError:
        raise ValueError(f"API identifier {identifier!r} is not a URI") from None
    if not parts.scheme or parts.fragment or "#" in identifier or any(c.isspace() for c in identifier):
        raise ValueError(f"API identifier {identifier!r} must be an absolute URI without a fragment")
    if parts.scheme in ("http", "https") and not parts.netloc:
        raise ValueError(f"API identifier {identifier!r} has no host")


def is_reserved_scope(scope: str) -> bool:
    """True for names in Warden's own namespace, in any letter case (so none can pass for another)."""
    return scope[:len(RESERVED_SCOPE_PREFIX)].lower() == RESERVED_SCOPE_PREFIX


def validate_api(api: Api) -> None:
    """Raise ValueError naming the first rule the API breaks. This is every operator-defined API
    (CLI, admin API, `apply`); Warden's admin API is registered by the server and not checked here."""
    validate_identifier(api.identifier)
    if not api.scopes:
        raise ValueError("an API needs at least one scope")
    for scope in api.scopes:
        if not is_scope_token(scope):
            raise ValueError(f"invalid scope name {scope!r}")
        if is_reserved_scope(scope):
            raise ValueError(f"scope name {scope!r} is reserved: names starting with "
                             f"'{RESERVED_SCOPE_PREFIX}' belong to Warden's admin API")
    if len(set(api.scopes)) != len(api.scopes):
        raise ValueError("duplicate scope names")
    if not MIN_TTL <= api.token_ttl <= MAX_TTL:
        raise ValueError(f"token lifetime must be between {MIN_TTL}s and {MAX_TTL}s")
    if api.tenant is not None:
        validate_tenant(api.tenant)
    if api.alg not in SIGNING_ALGS:
        raise ValueError(f"signing algorithm must be one of {', '.join(SIGNING_ALGS)}")
