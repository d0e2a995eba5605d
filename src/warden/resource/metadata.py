"""Protected resource metadata (RFC 9728): the document a resource server publishes about itself.

`ProtectedResourceMetadata` holds the §2 members Warden's resource library can
state truthfully: the resource identifier, the authorization servers whose
tokens it accepts, its scopes, the bearer methods (only the `Authorization`
header: tokens in the query or the body are refused) and the DPoP algorithms.
It is served at the §3 well-known URL, formed by inserting
`/.well-known/oauth-protected-resource` between the host and the path (and
query) of the resource identifier, and named in `WWW-Authenticate` challenges
by the §5.1 `resource_metadata` parameter. `AccessTokenMiddleware` and
`warden.resource.fastapi` serve it when given one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from warden.core.urls import url_problem

if TYPE_CHECKING:
    from warden.resource.validator import Validator

__all__ = ["WELL_KNOWN_PATH", "ProtectedResourceMetadata", "metadata_url"]

WELL_KNOWN_PATH = "/.well-known/oauth-protected-resource"


def metadata_url(resource: str) -> str:
    """The RFC 9728 §3 metadata URL of `resource` (the well-known string inserted before its path).

    A terminating slash after the host is removed first (§3.1):
    `https://api.example/orders` → `https://api.example/.well-known/oauth-protected-resource/orders`.
    """
    parts = urlsplit(resource)
    path = parts.path if parts.path != "/" else ""
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN_PATH + path, parts.query, ""))


def _strings(name: str, values: Iterable[str]) -> tuple[str, ...]:
    out = tuple(values)
    if isinstance(values, str) or not all(isinstance(v, str) and v for v in out):
        raise ValueError(f"{name} must be a list of non-empty strings")
    return out


@dataclass(frozen=True)
class ProtectedResourceMetadata:
    """The RFC 9728 §2 metadata of one protected resource.

    Args:
        resource: the resource identifier (an http(s) URL without fragment, §2), usually the
            `audience` the validator requires.
        authorization_servers: issuer identifiers of the authorization servers (RFC 8414) whose
            tokens this resource accepts.
        scopes_supported: scopes a client may need here (RECOMMENDED by §2).
        bearer_methods_supported: how tokens may be presented; Warden's library accepts only
            the `Authorization` header.
        dpop_signing_alg_values_supported: JWS algorithms accepted in DPoP proofs.
        resource_name: a human-readable name.
        resource_documentation: URL of documentation for developers.
        allow_insecure_http: accept a plain-http resource identifier on a non-loopback host (tests).
    """

    resource: str
    authorization_servers: tuple[str, ...] = ()
    scopes_supported: tuple[str, ...] = ()
    bearer_methods_supported: tuple[str, ...] = ("header",)
    dpop_signing_alg_values_supported: tuple[str, ...] = ()
    resource_name: str | None = None
    resource_documentation: str | None = None
    allow_insecure_http: bool = False

    def __post_init__(self) -> None:
        problem = url_problem(self.resource, allow_insecure_http=self.allow_insecure_http)
        if problem is not None:
            raise ValueError(f"resource {problem}")
        for name in ("authorization_servers", "scopes_supported", "bearer_methods_supported",
                     "dpop_signing_alg_values_supported"):
            object.__setattr__(self, name, _strings(name, getattr(self, name)))
        for issuer in self.authorization_servers:
            problem = url_problem(issuer, allow_insecure_http=self.allow_insecure_http)
            if problem is not None:
                raise ValueError(f"authorization server {issuer!r} {problem}")

    @classmethod
    def for_validator(cls, validator: Validator, *, resource: str | None = None,
                      scopes_supported: Iterable[str] = (), **options: Any) -> ProtectedResourceMetadata:
        """Metadata stating what `validator` enforces: its audience, issuer and DPoP algorithms."""
        return cls(
            resource=resource or validator.audience,
            authorization_servers=(validator.issuer,),
            scopes_supported=tuple(scopes_supported),
            dpop_signing_alg_values_supported=tuple(validator.dpop.algorithms),
            **options,
        )

    @property
    def url(self) -> str:
        """Where this document is served (§3)."""
        return metadata_url(self.resource)

    @property
    def path(self) -> str:
        """The path part of `url`, which the integrations answer."""
        return urlsplit(self.url).path

    def document(self) -> Mapping[str, Any]:
        out: dict[str, Any] = {"resource": self.resource}
        if self.authorization_servers:
            out["authorization_servers"] = list(self.authorization_servers)
        if self.scopes_supported:
            out["scopes_supported"] = list(self.scopes_supported)
        out["bearer_methods_supported"] = list(self.bearer_methods_supported)
        if self.dpop_signing_alg_values_supported:
            out["dpop_signing_alg_values_supported"] = list(self.dpop_signing_alg_values_supported)
        if self.resource_name:
            out["resource_name"] = self.resource_name
        if self.resource_documentation:
            out["resource_documentation"] = self.resource_documentation
        return out

    def render(self) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
        """Status, headers and body of the §3.2 answer."""
        body = json.dumps(self.document(), separators=(",", ":")).encode()
        return 200, (("content-type", "application/json"), ("cache-control", "max-age=300")), body
