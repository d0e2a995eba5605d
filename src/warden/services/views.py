"""JSON views of stored records, shared by `--json` CLI output and the admin API, so both
describe a client, an API, a secret or a key identically. Secrets appear only as metadata."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from warden.core.api import Api
from warden.core.client import Client, Grant
from warden.core.client_metadata import render_client_metadata
from warden.core.keys import SigningKey
from warden.core.secrets import ClientSecret, secret_state

__all__ = ["api_view", "client_view", "key_view", "render_time", "secret_view"]


def render_time(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def api_view(api: Api) -> dict[str, Any]:
    return {"identifier": api.identifier, "name": api.name, "scopes": list(api.scopes), "ttl": api.token_ttl,
            "alg": api.alg, "dpop_required": api.dpop_required, "cert_bound": api.cert_bound,
            "created_at": render_time(api.created_at)}


def client_view(client: Client, grants: Sequence[Grant]) -> dict[str, Any]:
    return {"client_id": client.client_id, "name": client.name, "enabled": client.enabled,
            "auth_method": client.auth_method.value, "tenant": client.tenant, "rate_limit": client.rate_limit,
            "grants": [{"api": g.api, "scopes": list(g.scopes), "default": g.position == 0} for g in grants],
            "tokens_revoked_before": render_time(client.revoked_before),
            "created_at": render_time(client.created_at),
            "metadata": json.loads(render_client_metadata(client.metadata))}


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
