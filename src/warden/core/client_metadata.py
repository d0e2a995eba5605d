"""Per-client authentication metadata (RFC 7591 §2 names where they exist).

Stored as one JSON object per client, so each strong-authentication method adds
its fields here, validated in one place, without a schema change per method:

- `jwks` / `jwks_uri`: the client's public keys for `private_key_jwt` (RFC 7523 §2.2);
- `federated`: (issuer, subject, required claims) triples for workload identity,
  where a platform-issued JWT authenticates the client with no static secret;
- `dpop_bound_access_tokens`: the client must present a DPoP proof (RFC 9449 §5.2);
- `tls_client_auth_subject_dn` or one `tls_client_auth_san_*` (RFC 8705 §2.1.2) for
  `tls_client_auth`, and `tls_client_certificate_bound_access_tokens` (§3.4);
- `token_exchange`: the client may use the token exchange grant (RFC 8693), for the targets it
  is granted.
- conditional access: `allowed_ips` (CIDR networks the client may call from, see
  `core.addresses`) and `max_token_lifetime` (seconds; caps every API's token lifetime);
- `pending_approval`: a dynamically registered client (RFC 7591) waiting for an operator;
  its requests are refused until it is approved. Server-owned: only approval clears it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from warden.core.addresses import Network, parse_allowed_ips, render_allowed_ips
from warden.core.durations import MAX_TTL, MIN_TTL

__all__ = [
    "MAX_TOKEN_LIFETIME",
    "TLS_SUBJECT_FIELDS",
    "ClientMetadata",
    "FederatedIdentity",
    "parse_client_metadata",
    "render_client_metadata",
    "validate_jwks_document",
]

TLS_SUBJECT_FIELDS = ("tls_client_auth_subject_dn", "tls_client_auth_san_dns", "tls_client_auth_san_uri",
                      "tls_client_auth_san_ip", "tls_client_auth_san_email")
_MAX_KEYS = 10
_MAX_FEDERATED = 20
MAX_TOKEN_LIFETIME = MAX_TTL  # the bounds of an API's own token lifetime


@dataclass(frozen=True, slots=True)
class FederatedIdentity:
    """A platform identity that authenticates this client: the token's `iss` and `sub` must match,
    and every required claim must equal its value."""

    issuer: str
    subject: str
    claims: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ClientMetadata:
    jwks: Mapping[str, Any] | None = None
    jwks_uri: str | None = None
    federated: tuple[FederatedIdentity, ...] = ()
    dpop_bound_access_tokens: bool = False
    tls_client_auth: tuple[str, str] | None = None  # (field, value): the one registered subject (RFC 8705 §2.1.2)
    tls_client_certificate_bound_access_tokens: bool = False
    token_exchange: bool = False  # may use the RFC 8693 token exchange grant
    allowed_ips: tuple[Network, ...] = ()  # empty: any source address
    max_token_lifetime: int | None = None  # seconds; None: the APIs' own lifetimes
    pending_approval: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields of methods this version does not know

    @property
    def is_empty(self) -> bool:
        return self == ClientMetadata()


_EMPTY = ClientMetadata()


def validate_jwks_document(jwks: Any) -> Mapping[str, Any]:
    """A JWKS of public keys, each with a unique `kid`; raise ValueError naming the problem."""
    from warden.jose import load_public_jwk

    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError('JWKS must be an object with a non-empty "keys" array')
    if len(jwks["keys"]) > _MAX_KEYS:
        raise ValueError(f"JWKS may hold at most {_MAX_KEYS} keys")
    kids: set[str] = set()
    for i, jwk in enumerate(jwks["keys"]):
        try:
            load_public_jwk(jwk)
        except ValueError as exc:
            raise ValueError(f"JWKS key {i}: {exc}") from None
        kid = jwk.get("kid")
        if kid is not None and (not isinstance(kid, str) or kid in kids):
            raise ValueError(f"JWKS key {i}: kid must be a unique string")
        if kid is not None:
            kids.add(kid)
    return {"keys": [dict(k) for k in jwks["keys"]]}


def _https_url(value: Any, name: str, allow_loopback_http: bool) -> str:
    if not isinstance(value, str) or len(value) > 2048:
        raise ValueError(f"{name} must be a URL")
    parts = urlsplit(value)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback and allow_loopback_http):
        raise ValueError(f"{name} must be an https URL")
    if not parts.hostname or parts.fragment:
        raise ValueError(f"{name} must be an absolute URL without a fragment")
    return value


def parse_client_metadata(data: Mapping[str, Any] | str | None, *, allow_loopback_http: bool = False) -> ClientMetadata:
    """Parse stored or operator-supplied metadata; raise ValueError naming the bad field."""
    if data is None or data == "":
        return _EMPTY
    if isinstance(data, str):
        data = json.loads(data)
    if not isinstance(data, Mapping):
        raise ValueError("client metadata must be an object")
    if not data:
        return _EMPTY  # most clients: one shared value keeps a 100,000-client registry small
    known = {"jwks", "jwks_uri", "federated", "dpop_bound_access_tokens",
             "tls_client_certificate_bound_access_tokens", "token_exchange", "allowed_ips", "max_token_lifetime",
             "pending_approval", *TLS_SUBJECT_FIELDS}
    jwks = validate_jwks_document(data["jwks"]) if data.get("jwks") is not None else None
    jwks_uri = (_https_url(data["jwks_uri"], "jwks_uri", allow_loopback_http)
                if data.get("jwks_uri") is not None else None)
    if jwks is not None and jwks_uri is not None:
        raise ValueError("give jwks or jwks_uri, not both (RFC 7591 §2)")
    federated = []
    raw_fed = data.get("federated") or []
    if not isinstance(raw_fed, list) or len(raw_fed) > _MAX_FEDERATED:
        raise ValueError(f"federated must be a list of at most {_MAX_FEDERATED} identities")
    for i, item in enumerate(raw_fed):
        if not isinstance(item, Mapping) or not isinstance(item.get("issuer"), str) or not isinstance(
                item.get("subject"), str) or not item["subject"]:
            raise ValueError(f"federated[{i}] needs issuer and subject strings")
        claims = item.get("claims") or {}
        if not isinstance(claims, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in claims.items()):
            raise ValueError(f"federated[{i}].claims must map claim names to strings")
        federated.append(FederatedIdentity(item["issuer"], item["subject"], tuple(sorted(claims.items()))))
    dpop = data.get("dpop_bound_access_tokens", False)
    if not isinstance(dpop, bool):
        raise ValueError("dpop_bound_access_tokens must be true or false")
    subjects = [(name, data[name]) for name in TLS_SUBJECT_FIELDS if data.get(name) is not None]
    if len(subjects) > 1:
        raise ValueError("register exactly one of " + ", ".join(TLS_SUBJECT_FIELDS) + " (RFC 8705 §2.1.2)")
    if subjects and (not isinstance(subjects[0][1], str) or not subjects[0][1] or len(subjects[0][1]) > 1024):
        raise ValueError(f"{subjects[0][0]} must be a non-empty string")
    if subjects and subjects[0][0] == "tls_client_auth_subject_dn":
        from cryptography import x509

        try:
            x509.Name.from_rfc4514_string(subjects[0][1])
        except ValueError:
            raise ValueError("tls_client_auth_subject_dn is not an RFC 4514 distinguished name") from None
    bound = data.get("tls_client_certificate_bound_access_tokens", False)
    if not isinstance(bound, bool):
        raise ValueError("tls_client_certificate_bound_access_tokens must be true or false")
    exchange = data.get("token_exchange", False)
    if not isinstance(exchange, bool):
        raise ValueError("token_exchange must be true or false")
    raw_ips = data.get("allowed_ips") or []
    if not isinstance(raw_ips, list):
        raise ValueError("allowed_ips must be a list of CIDR networks")
    allowed_ips = parse_allowed_ips(raw_ips)
    lifetime = data.get("max_token_lifetime")
    if lifetime is not None and (isinstance(lifetime, bool) or not isinstance(lifetime, int)
                                 or not MIN_TTL <= lifetime <= MAX_TOKEN_LIFETIME):
        raise ValueError(f"max_token_lifetime must be {MIN_TTL} to {MAX_TOKEN_LIFETIME} seconds")
    pending = data.get("pending_approval", False)
    if not isinstance(pending, bool):
        raise ValueError("pending_approval must be true or false")
    extra = {k: v for k, v in data.items() if k not in known}
    return ClientMetadata(jwks, jwks_uri, tuple(federated), dpop, subjects[0] if subjects else None, bound,
                          token_exchange=exchange, allowed_ips=allowed_ips, max_token_lifetime=lifetime,
                          pending_approval=pending, extra=extra)


def render_client_metadata(metadata: ClientMetadata) -> str:
    out: dict[str, Any] = dict(metadata.extra)
    if metadata.jwks is not None:
        out["jwks"] = metadata.jwks
    if metadata.jwks_uri is not None:
        out["jwks_uri"] = metadata.jwks_uri
    if metadata.federated:
        out["federated"] = [{"issuer": f.issuer, "subject": f.subject, **({"claims": dict(f.claims)} if f.claims
                                                                           else {})} for f in metadata.federated]
    if metadata.dpop_bound_access_tokens:
        out["dpop_bound_access_tokens"] = True
    if metadata.tls_client_auth is not None:
        out[metadata.tls_client_auth[0]] = metadata.tls_client_auth[1]
    if metadata.tls_client_certificate_bound_access_tokens:
        out["tls_client_certificate_bound_access_tokens"] = True
    if metadata.token_exchange:
        out["token_exchange"] = True
    if metadata.allowed_ips:
        out["allowed_ips"] = render_allowed_ips(metadata.allowed_ips)
    if metadata.max_token_lifetime is not None:
        out["max_token_lifetime"] = metadata.max_token_lifetime
    if metadata.pending_approval:
        out["pending_approval"] = True
    return json.dumps(out, separators=(",", ":"), sort_keys=True)
