"""Authenticate presented client credentials against the cached registry.

Every failure answers the same `invalid_client` description, so an unknown
client, a wrong secret, a disabled client and a wrong method look alike on the
wire (RFC 6749 §5.2); the private reason goes to audit and metrics. An unknown
client still costs one keyed hash, so timing does not tell the cases apart either.
Use of an expired or revoked secret is raised as a security event.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from warden.core.client import AuthMethod
from warden.core.secrets import SecretState, hash_secret, secret_state
from warden.protocol.client_auth import PresentedCredentials
from warden.protocol.errors import InvalidClient
from warden.services.registry import ClientEntry

__all__ = ["SUPPORTED_AUTH_METHODS", "authenticate_client"]

SUPPORTED_AUTH_METHODS = (AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST, AuthMethod.PRIVATE_KEY_JWT,
                          AuthMethod.TLS_CLIENT_AUTH, AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH)
_FAILED = "client authentication failed"
_DUMMY_HASH = b"\x00" * 32


def authenticate_client(
    presented: PresentedCredentials,
    entry: ClientEntry | None,
    pepper: bytes,
    now: float,
    on_secret_used: Callable[[str, float], None],
    on_superseded: Callable[[], None] | None = None,
) -> ClientEntry:
    """Return the authenticated client's entry or raise InvalidClient with a private reason.

    `entry` is the registry's entry for `presented.client_id` (None: no such client).
    `on_superseded` is called when the secret used has a newer active successor (it is in its
    rotation grace period), for the metric that tells operators an old secret is still in use."""
    presented_hash = hash_secret(pepper, presented.secret or "")
    if entry is None:
        hmac.compare_digest(presented_hash, _DUMMY_HASH)
        raise InvalidClient(_FAILED, reason="unknown_client")
    matched = None
    for secret in entry.secrets:
        if hmac.compare_digest(presented_hash, secret.hash):
            matched = secret
    if matched is None:
        raise InvalidClient(_FAILED, reason="wrong_secret")
    state = secret_state(matched, now)
    if state is SecretState.EXPIRED:
        raise InvalidClient(_FAILED, reason="secret_expired")
    if state is SecretState.REVOKED:
        raise InvalidClient(_FAILED, reason="secret_revoked")
    if entry.client.auth_method is not presented.method:
        raise InvalidClient(_FAILED, reason="auth_method_mismatch")  # no downgrade between methods
    if not entry.client.enabled:
        raise InvalidClient(_FAILED, reason="client_disabled")
    on_secret_used(matched.secret_id, now)
    if on_superseded is not None and len(entry.secrets) > 1 and any(
            s.created_at > matched.created_at and secret_state(s, now) is SecretState.ACTIVE for s in entry.secrets):
        on_superseded()
    return entry
