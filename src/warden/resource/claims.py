"""The validated claims of an RFC 9068 access token (RFC 9068 §2.2, RFC 7800 §3.1).

`Claims` is what `Validator.validate` returns. It is read-only: typed
properties for the registered claims, `payload` (a read-only view of the whole
JWT Claims Set) and `claims["name"]` / `claims.get("name")` for anything else.
It never holds the token itself, so logging or printing it leaks no credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import cast

__all__ = ["Claims"]


class Claims:
    """Claims of a validated access token.

    Built only by the validator after every check passed; the cached path
    returns the same instance to every caller, hence no setters.
    """

    __slots__ = ("_aud", "_payload", "_scope")

    def __init__(self, payload: dict[str, object], aud: tuple[str, ...], scope: frozenset[str]) -> None:
        self._payload = payload
        self._aud = aud
        self._scope = scope

    @property
    def iss(self) -> str:
        """Issuer (RFC 7519 §4.1.1), equal to the configured issuer."""
        return cast(str, self._payload["iss"])

    @property
    def sub(self) -> str:
        """Subject; for the client credentials grant, the client (RFC 9068 §2.2)."""
        return cast(str, self._payload["sub"])

    @property
    def client_id(self) -> str:
        """The OAuth client the token was issued to (RFC 9068 §2.2, RFC 8693 §4.3)."""
        return cast(str, self._payload["client_id"])

    @property
    def aud(self) -> tuple[str, ...]:
        """Audiences (RFC 7519 §4.1.3); always contains the validator's audience."""
        return self._aud

    @property
    def scope(self) -> frozenset[str]:
        """Granted scopes (RFC 9068 §2.2.3, RFC 8693 §4.2); empty when the claim is absent."""
        return self._scope

    @property
    def exp(self) -> float:
        """Expiration time, seconds since the epoch (RFC 7519 §4.1.4)."""
        return cast(float, self._payload["exp"])

    @property
    def iat(self) -> float | None:
        """Issued-at time (RFC 7519 §4.1.6)."""
        return cast("float | None", self._payload.get("iat"))

    @property
    def nbf(self) -> float | None:
        """Not-before time (RFC 7519 §4.1.5)."""
        return cast("float | None", self._payload.get("nbf"))

    @property
    def jti(self) -> str:
        """Token identifier (RFC 7519 §4.1.7)."""
        return cast(str, self._payload["jti"])

    @property
    def tenant(self) -> str | None:
        """Warden's `tenant` claim, when the client has one."""
        value = self._payload.get("tenant")
        return value if isinstance(value, str) else None

    @property
    def jkt(self) -> str | None:
        """`cnf.jkt`: thumbprint of the DPoP key the token is bound to (RFC 9449 §6.1)."""
        return self._confirmation("jkt")

    @property
    def x5t_s256(self) -> str | None:
        """`cnf.x5t#S256`: thumbprint of the bound client certificate (RFC 8705 §3.1)."""
        return self._confirmation("x5t#S256")

    @property
    def payload(self) -> Mapping[str, object]:
        """The whole JWT Claims Set, read-only."""
        return MappingProxyType(self._payload)

    def _confirmation(self, member: str) -> str | None:
        cnf = self._payload.get("cnf")
        value = cnf.get(member) if isinstance(cnf, dict) else None
        return value if isinstance(value, str) else None

    def has_scopes(self, *scopes: str) -> bool:
        """True if every one of `scopes` was granted."""
        return self._scope.issuperset(scopes)

    def __getitem__(self, name: str) -> object:
        return self._payload[name]

    def __contains__(self, name: object) -> bool:
        return name in self._payload

    def get(self, name: str, default: object = None) -> object:
        """The value of claim `name`, or `default`."""
        return self._payload.get(name, default)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Claims) and other._payload == self._payload

    def __hash__(self) -> int:
        return hash((self._payload.get("iss"), self._payload.get("jti")))

    def __repr__(self) -> str:
        return (f"Claims(iss={self.iss!r}, sub={self.sub!r}, client_id={self.client_id!r}, "
                f"aud={self._aud!r}, scope={sorted(self._scope)!r}, exp={self.exp!r}, jti={self.jti!r})")
