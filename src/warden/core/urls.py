"""URL rules shared by the libraries and the agent: which URLs may carry credentials, and loopback hosts.

TLS is required for issuers and endpoints (RFC 6749 §3.2, RFC 8414 §2) except on loopback hosts,
or when the caller explicitly allows plain HTTP.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback_host", "url_problem"]


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback IP literals (with or without IPv6 brackets)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: object, *, allow_insecure_http: bool = False) -> str | None:
    """Return why `url` cannot be an issuer or endpoint URL, or None if it can.

    TLS is required (RFC 6749 §3.2, RFC 8414 §2) except on loopback hosts, or
    when the caller explicitly allows plain HTTP.
    """
    if not isinstance(url, str) or not url:
        return "must be a non-empty URL string"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an absolute http(s) URL"
    if parts.username is not None or parts.password is not None:
        return "must not contain user information"
    if parts.fragment or "#" in url:
        return "must not contain a fragment"
    if parts.scheme == "http" and not (allow_insecure_http or is_loopback_host(host)):
        return "must use https (plain http is allowed only on loopback hosts)"
    return None
