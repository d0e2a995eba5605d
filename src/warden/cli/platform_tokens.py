"""Where `warden token` gets a workload identity's platform token (its federated assertion).

A CI job proves who it is with a token its platform issues: GitHub Actions hands one out
on request (`ACTIONS_ID_TOKEN_REQUEST_URL` with `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, for a
chosen audience, when the job has `permissions: id-token: write`); GitLab CI puts one in
the variable named under the job's `id_tokens:`; Kubernetes mounts one as a file. The
token is sent as the RFC 7523 client assertion and Warden checks it against the trusted
issuer's keys (`[[trusted_issuers]]`). Failures are `PlatformTokenError` with an exit code:
a missing variable or file is a usage error (2), an unreachable Actions endpoint is
"unavailable" (4). Messages name the variable or file, never the token.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit, urlunsplit

from warden.cli.token_output import EXIT_UNAVAILABLE, EXIT_USAGE, CommandFailed

__all__ = ["MAX_PLATFORM_TOKEN_BYTES", "PlatformTokenError", "github_actions_token", "platform_token",
           "token_from_env", "token_from_file"]

MAX_PLATFORM_TOKEN_BYTES = 16384  # larger than any platform's OIDC token; the server refuses more anyway
_REQUEST_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"
_REQUEST_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"


class PlatformTokenError(CommandFailed):
    """The platform token could not be read or requested."""


def _checked(value: str, where: str) -> str:
    value = value.strip()
    if not value:
        raise PlatformTokenError(f"{where} is empty", EXIT_USAGE)
    if len(value) > MAX_PLATFORM_TOKEN_BYTES or not value.isascii() or any(c.isspace() for c in value):
        raise PlatformTokenError(f"{where} does not hold one compact JWT", EXIT_USAGE)
    return value


def token_from_file(path: str) -> str:
    """The token in a file (a projected service-account token, a token a previous step wrote)."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            text = fh.read(MAX_PLATFORM_TOKEN_BYTES + 2)
    except OSError as exc:
        raise PlatformTokenError(f"--federated-token-file {path}: {exc.strerror}", EXIT_USAGE) from None
    return _checked(text, f"--federated-token-file {path}")


def token_from_env(name: str, environ: Mapping[str, str]) -> str:
    """The token in an environment variable (GitLab CI `id_tokens:`)."""
    value = environ.get(name)
    if value is None:
        raise PlatformTokenError(f"--federated-token-env: {name} is not set (GitLab CI: declare it under the "
                                 "job's id_tokens: with the audience Warden trusts)", EXIT_USAGE)
    return _checked(value, f"--federated-token-env {name}")


def github_actions_token(audience: str, environ: Mapping[str, str], *, timeout: float = 10.0) -> str:
    """Ask the GitHub Actions runtime for an OIDC token with `aud` = `audience`.

    The runtime's endpoint takes the request token as a bearer token and answers
    `{"value": "<JWT>"}`; both variables exist only in jobs granted `id-token: write`.
    """
    import httpx

    url, bearer = environ.get(_REQUEST_URL), environ.get(_REQUEST_TOKEN)
    if not url or not bearer:
        raise PlatformTokenError(f"--github-oidc-audience: {_REQUEST_URL} and {_REQUEST_TOKEN} are not set "
                                 "(give the job `permissions: id-token: write`)", EXIT_USAGE)
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise PlatformTokenError(f"{_REQUEST_URL} is not an http(s) URL", EXIT_USAGE)
    query = f"{parts.query}&{urlencode({'audience': audience})}" if parts.query else urlencode({"audience": audience})
    try:
        response = httpx.get(urlunsplit(parts._replace(query=query)), timeout=timeout,
                             headers={"authorization": f"Bearer {bearer}", "accept": "application/json"})
    except httpx.HTTPError as exc:
        raise PlatformTokenError(f"GitHub Actions OIDC endpoint unreachable ({type(exc).__name__})",
                                 EXIT_UNAVAILABLE) from None
    if response.status_code >= 500 or response.status_code == 429:
        raise PlatformTokenError(f"GitHub Actions OIDC endpoint answered HTTP {response.status_code}",
                                 EXIT_UNAVAILABLE)
    if response.status_code != 200:
        raise PlatformTokenError(f"GitHub Actions OIDC endpoint refused the request (HTTP {response.status_code}); "
                                 "does the job have `permissions: id-token: write`?", EXIT_USAGE)
    try:
        value = response.json().get("value")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str):
        raise PlatformTokenError("GitHub Actions OIDC endpoint answered without a token", EXIT_UNAVAILABLE)
    return _checked(value, "the GitHub Actions OIDC token")


def platform_token(*, file: str | None, env: str | None, github_audience: str | None,
                   environ: Mapping[str, str] | None = None) -> str | None:
    """The platform token named by `warden token`'s flags, or None when none is given."""
    environ = os.environ if environ is None else environ
    if file is not None:
        return token_from_file(file)
    if env is not None:
        return token_from_env(env, environ)
    if github_audience is not None:
        return github_actions_token(github_audience, environ)
    return None
