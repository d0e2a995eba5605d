"""JSON views of stored records, shared by `--json` CLI output and the admin API, so both
describe a client, an API, a secret or a key identically. Secrets appear only as metadata."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from warden.core.addresses import render_allowed_ips
from warden.core.api import Api
from warden.core.client import Client, Grant
from warden.core.client_metadata import render_client_metadata
from warden.core.keys import SigningKey
from warden.core.registration import RegistrationToken
from warden.core.secrets import ClientSecret, secret_state

__all__ = ["api_view", "client_view", "key_view", "registration_token_view", "render_time", "secret_view"]


def render_time(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def api_view(api: Api) -> dict[str, Any]:
    return {"identifier": api.identifier, "name": api.name, "scopes": list(api.scopes), "ttl": api.token_ttl,
            "alg": api.alg, "dpop_required": api.dpop_required, "cert_bound": api.cert_bound,
            "tenant": api.tenant, "created_at": render_time(api.created_at)}


def client_view(client: Client, grants: Sequence[Grant]) -> dict[str, Any]:
    """Conditional access and the approval state are top-level fields, not part of `metadata`."""
    metadata = json.loads(render_client_metadata(client.metadata))
    for name in ("allowed_ips", "max_token_lifetime", "pending_approval"):
        metadata.pop(name, None)
    return {"client_id": client.client_id, "name": client.name, "enabled": client.enabled,
            "auth_method": client.auth_method.value, "tenant": client.tenant, "rate_limit": client.rate_limit,
            "grants": [{"api": g.api, "scopes": list(g.scopes), "default": g.position == 0} for g in grants],
            "tokens_revoked_before": render_time(client.revoked_before),
            "created_at": render_time(client.created_at),
            "allowed_ips": render_allowed_ips(client.metadata.allowed_ips),
            "max_token_lifetime": client.metadata.max_token_lifetime,
            "pending_approval": client.metadata.pending_approval,
            "metadata": metadata}


def secret_view(secret: ClientSecret, now: float) -> dict[str, Any]:
    return {"secret_id": secret.secret_id, "state": secret_state(secret, now).value, "hint": f"...{secret.hint}",
            "created_at": render_time(secret.created_at), "expires_at": render_time(secret.expires_at),
            "revoked_at": render_time(secret.revoked_at), "last_used_at": render_time(secret.last_used_at)}


def key_view(key: SigningKey) -> dict[str, Any]:
    ref = key.encrypted_private_key  # its prefix names the key backend holding the private key
    backend = "pkcs11" if ref.startswith(b"p11:") else "database" if ref.startswith(b"w1") else "other"
    return {"kid": key.kid, "alg": key.alg, "state": key.state.value, "created_at": render_time(key.created_at),
            "activated_at": render_time(key.activated_at), "retired_at": render_time(key.retired_at),
            "backend": backend}


def registration_token_view(token: RegistrationToken, now: float) -> dict[str, Any]:
    """An initial access token's policy and state; never its value or hash."""
    return {"token_id": token.token_id, "state": token.state(now),
            "grants": [{"api": api, "scopes": list(scopes)} for api, scopes in token.grants],
            "tenant": token.tenant, "approval": token.approval, "uses": token.uses, "max_uses": token.max_uses,
            "expires_at": render_time(token.expires_at), "created_at": render_time(token.created_at),
            "revoked_at": render_time(token.revoked_at), "created_by": token.created_by}
