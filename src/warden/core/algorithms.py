"""The closed set of JWS algorithm names Warden knows (RFC 7518, RFC 8037), defined once.

Names only, so that light modules (the CLI's argument parser, settings, core rules) can use them
without loading cryptography; `warden.jose.ALGORITHMS` is the registry of their implementations,
keyed by exactly these names. `none` and HMAC are not in the set, so no caller can select them.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["DEFAULT_ALG", "SIGNING_ALGS", "VERIFY_ALGS", "AlgName"]

AlgName = Literal["ES256", "RS256", "PS256", "EdDSA"]

VERIFY_ALGS: tuple[AlgName, ...] = ("ES256", "RS256", "PS256", "EdDSA")
"""Every algorithm Warden verifies: client assertions, DPoP proofs, access tokens at resource servers."""

SIGNING_ALGS: tuple[AlgName, ...] = ("ES256", "RS256", "EdDSA")
"""The algorithms Warden makes keys for and signs access tokens with (PS256 is verify-only)."""

DEFAULT_ALG: AlgName = "ES256"
