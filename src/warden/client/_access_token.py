"""The token handed to callers: value, type, remaining life, and the header that presents it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AccessToken"]


@dataclass(frozen=True, repr=False)
class AccessToken:
    """A token handed out by `ClientCredentials`; `repr` never shows `access_token`.

    Attributes:
        access_token: the token value.
        token_type: "Bearer" or "DPoP".
        expires_in: seconds of life left on the local clock when it was handed out.
        refresh_in: seconds until the source will next try to renew it.
        scope: the granted scope when the server stated it, else None.
        audience: the audience (RFC 8707 resource) it was requested for.
    """

    access_token: str
    token_type: str
    expires_in: float
    refresh_in: float
    scope: tuple[str, ...] | None
    audience: str | None

    @property
    def authorization(self) -> str:
        """The `Authorization` header value (RFC 6750 §2.1, RFC 9449 §7.1)."""
        return f"{self.token_type} {self.access_token}"

    def __repr__(self) -> str:
        return (
            f"AccessToken(token_type={self.token_type!r}, expires_in={self.expires_in:.1f}, "
            f"scope={self.scope!r}, audience={self.audience!r}, access_token='…')"
        )
