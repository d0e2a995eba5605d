"""Token request parameters that several grants read alike: `scope` (RFC 6749 §3.3) and the
subject token of a token exchange (RFC 8693 §2.1). Pure functions of the form; they raise only
`OAuthError` subclasses."""

from __future__ import annotations

from collections.abc import Collection

from warden.core.scope import parse_scope
from warden.protocol.errors import InvalidRequest, InvalidScope
from warden.protocol.form import Form

__all__ = ["requested_scopes", "subject_token"]


def requested_scopes(form: Form) -> tuple[str, ...] | None:
    """The scopes the `scope` parameter asks for, or None when it is absent; InvalidScope when malformed."""
    raw_scope = form.single("scope")
    if raw_scope is None:
        return None
    try:
        return parse_scope(raw_scope)
    except ValueError:
        raise InvalidScope("scope is malformed", reason="malformed_scope") from None


def subject_token(form: Form, types: Collection[str], actor: str) -> tuple[str, str]:
    """(`subject_token`, `subject_token_type`) of a token exchange form, the type one of `types`;
    `actor_token` is refused, `actor` saying who acts instead. InvalidRequest otherwise."""
    token = form.single("subject_token")
    if token is None:
        raise InvalidRequest("subject_token is required", reason="missing_subject_token")
    token_type = form.single("subject_token_type")
    if token_type is None:
        raise InvalidRequest("subject_token_type is required", reason="missing_subject_token_type")
    if token_type not in types:
        raise InvalidRequest("subject_token_type must be " + " or ".join(sorted(types)),
                             reason="unsupported_token_type")
    if form.single("actor_token") is not None or form.single("actor_token_type") is not None:
        raise InvalidRequest(f"actor_token is not supported: the authenticated client is {actor}",
                             reason="actor_token_unsupported")
    return token, token_type
