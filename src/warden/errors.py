"""The root of every error Warden raises, and the non-protocol branches.

`OAuthError` (the wire-visible branch) lives in `warden.protocol.errors`.
`ConfigError` and `StorageError` become a one-line message and a non-zero exit
in the CLI, and a generic 500/503 with a logged correlation id in the server.
"""

from __future__ import annotations

__all__ = ["ConfigError", "Conflict", "Forbidden", "NotFound", "StorageError", "StorageUnavailable", "WardenError"]


class WardenError(Exception):
    """Root of Warden's exceptions."""


class ConfigError(WardenError):
    """Settings or command-line input that cannot be used; the message names the key."""


class StorageError(WardenError):
    """The store refused or failed an operation."""


class StorageUnavailable(StorageError):
    """The store cannot be reached; callers should answer 503, never an auth error."""


class NotFound(WardenError):
    """The named record does not exist (a fact about the request, not a storage failure)."""


class Conflict(WardenError):
    """The change would violate a uniqueness or state rule (likewise not a storage failure)."""


class Forbidden(WardenError):
    """The caller may not make this change (a tenant admin reaching outside its tenant): 403."""
