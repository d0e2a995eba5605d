"""The one error of `warden.jose` (re-exported by `warden.jose.jws` and the package)."""

from __future__ import annotations


class JoseError(ValueError):
    """A JWS that is malformed, refused by policy, or whose signature does not verify."""
