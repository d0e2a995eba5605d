"""What `warden token` prints and where it writes, for people and for CI/CD pipelines.

Formats (`--format`):

- `text` (the default): the access token alone on stdout; `--json` gives `json`.
- `json`: `{"access_token", "token_type", "expires_in", "scope"}`.
- `env`: `WARDEN_ACCESS_TOKEN=<token>`, shell-quoted, for `eval "$(warden token ...)"`.
- `github`: `::add-mask::<token>` first, so the runner hides the token in every later log
  line; then `NAME=<token>` appended to the file in `$GITHUB_OUTPUT` (`--github-output NAME`,
  a step output) or `$GITHUB_ENV` (`--github-env NAME`, an environment variable of the
  following steps), or, with neither, the token on stdout after the mask.
- `gitlab`: `VAR=<token>` appended to a dotenv file (`--gitlab-dotenv FILE`, for
  `artifacts:reports:dotenv`), or else `export VAR=<token>` on stdout.

Exit codes a pipeline can branch on (`EXIT_*`): 0 issued; 2 usage or configuration;
3 authentication refused (`invalid_client`, `unauthorized_client`, `invalid_grant`: fix
the identity, retrying will not help); 4 unavailable (connection refused, timeouts, 5xx,
429, `temporarily_unavailable`: retry later); 5 request refused (`invalid_scope`,
`invalid_target`, `invalid_request`...: fix the request); 1 anything else.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from warden.errors import WardenError

__all__ = [
    "EXIT_AUTH_REFUSED",
    "EXIT_FAILED",
    "EXIT_REQUEST_REFUSED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "FORMATS",
    "CommandFailed",
    "IssuedAccessToken",
    "TokenDestinations",
    "exit_code_for",
    "write_token",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH_REFUSED = 3
EXIT_UNAVAILABLE = 4
EXIT_REQUEST_REFUSED = 5
FORMATS = ("text", "json", "env", "github", "gitlab")

_AUTH_CODES = frozenset({"invalid_client", "unauthorized_client", "invalid_grant"})
_UNAVAILABLE_CODES = frozenset({"network_error", "server_error", "slow_down", "temporarily_unavailable"})
_REQUEST_CODES = frozenset({"invalid_scope", "invalid_target", "invalid_request", "unsupported_grant_type",
                            "invalid_dpop_proof", "use_dpop_nonce"})
# RFC 6750 §2.1 b64token: what may be written into a dotenv or GITHUB_* file without quoting or a
# newline that would start another variable.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CommandFailed(WardenError):
    """A command failure with its exit code; `warden` prints the message in one line."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_for(error: str, *, status: int | None, retryable: bool) -> int:
    """The exit code for a token error: its OAuth code (RFC 6749 §5.2) or the client library's local code."""
    if error in _AUTH_CODES:
        return EXIT_AUTH_REFUSED
    if retryable or error in _UNAVAILABLE_CODES or (status is not None and (status >= 500 or status == 429)):
        return EXIT_UNAVAILABLE
    if error in _REQUEST_CODES:
        return EXIT_REQUEST_REFUSED
    return EXIT_FAILED


@dataclass(frozen=True, repr=False)
class IssuedAccessToken:
    access_token: str
    token_type: str
    expires_in: int
    scope: str | None

    def as_json(self) -> dict[str, object]:
        return {"access_token": self.access_token, "token_type": self.token_type, "expires_in": self.expires_in,
                "scope": self.scope}

    def __repr__(self) -> str:
        return f"IssuedAccessToken(token_type={self.token_type!r}, expires_in={self.expires_in})"


@dataclass(frozen=True)
class TokenDestinations:
    """Where the CI formats write besides stdout; each name is checked by `validate`."""

    variable: str = "WARDEN_ACCESS_TOKEN"
    github_output: str | None = None
    github_env: str | None = None
    gitlab_dotenv: str | None = None

    def validate(self, fmt: str, environ: Mapping[str, str]) -> None:
        """Raise CommandFailed (usage) for a destination that does not fit the format, before any token exists."""
        for flag, name in (("--variable", self.variable), ("--github-output", self.github_output),
                           ("--github-env", self.github_env)):
            if name is not None and not _NAME.fullmatch(name):
                raise CommandFailed(f"{flag} {name!r}: expected a variable name (letters, digits, _)", EXIT_USAGE)
        if (self.github_output or self.github_env) and fmt != "github":
            raise CommandFailed("--github-output and --github-env go with --format github", EXIT_USAGE)
        if self.gitlab_dotenv and fmt != "gitlab":
            raise CommandFailed("--gitlab-dotenv goes with --format gitlab", EXIT_USAGE)
        for flag, var, name in (("--github-output", "GITHUB_OUTPUT", self.github_output),
                                ("--github-env", "GITHUB_ENV", self.github_env)):
            if name is not None and not environ.get(var):
                raise CommandFailed(f"{flag}: ${var} is not set (run inside a GitHub Actions step)", EXIT_USAGE)


def _append(path: str, line: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError as exc:
        raise CommandFailed(f"cannot write {path}: {exc.strerror}") from None


def write_token(token: IssuedAccessToken, fmt: str, destinations: TokenDestinations, out: TextIO,
                environ: Mapping[str, str]) -> None:
    """Print `token` in `fmt` on `out` and write it to the destinations the format was given."""
    value = token.access_token
    if fmt == "json":
        out.write(json.dumps(token.as_json(), indent=2) + "\n")
        return
    if fmt == "text":
        out.write(value + "\n")
        return
    if not _B64TOKEN.fullmatch(value):
        # A token with a newline would add variables to the files below; the server never sends one.
        raise CommandFailed("the server's access token has characters a variable cannot hold")
    if fmt == "env":
        out.write(f"{destinations.variable}={shlex.quote(value)}\n")
    elif fmt == "github":
        out.write(f"::add-mask::{value}\n")  # before anything else that holds the token
        out.flush()
        if destinations.github_output:
            _append(environ["GITHUB_OUTPUT"], f"{destinations.github_output}={value}")
        if destinations.github_env:
            _append(environ["GITHUB_ENV"], f"{destinations.github_env}={value}")
        if not (destinations.github_output or destinations.github_env):
            out.write(value + "\n")
    elif fmt == "gitlab":
        if destinations.gitlab_dotenv:
            _append(destinations.gitlab_dotenv, f"{destinations.variable}={value}")
        else:
            out.write(f"export {destinations.variable}={shlex.quote(value)}\n")
    else:
        raise CommandFailed(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}", EXIT_USAGE)
