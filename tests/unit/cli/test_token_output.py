"""`warden token` output formats and exit codes, without a server (cli/token_output.py)."""

from __future__ import annotations

import io
import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.cli.token_output import (
    EXIT_AUTH_REFUSED,
    EXIT_FAILED,
    EXIT_REQUEST_REFUSED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CommandFailed,
    IssuedAccessToken,
    TokenDestinations,
    exit_code_for,
    write_token,
)

TOKEN = IssuedAccessToken("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjIn0.c2ln", "Bearer", 900, "read")


@pytest.mark.parametrize(("error", "status", "retryable", "code"), [
    ("invalid_client", 401, False, EXIT_AUTH_REFUSED),
    ("unauthorized_client", 400, False, EXIT_AUTH_REFUSED),
    ("invalid_grant", 400, False, EXIT_AUTH_REFUSED),
    ("network_error", None, True, EXIT_UNAVAILABLE),
    ("server_error", 502, True, EXIT_UNAVAILABLE),
    ("temporarily_unavailable", 503, True, EXIT_UNAVAILABLE),
    ("slow_down", 429, True, EXIT_UNAVAILABLE),
    ("invalid_scope", 400, False, EXIT_REQUEST_REFUSED),
    ("invalid_target", 400, False, EXIT_REQUEST_REFUSED),
    ("issuer_mismatch", None, False, EXIT_FAILED),
    ("invalid_response", 200, False, EXIT_FAILED),
])
def test_exit_code_for_each_kind_of_failure(error, status, retryable, code):
    assert exit_code_for(error, status=status, retryable=retryable) == code


def render(fmt: str, destinations: TokenDestinations | None = None, environ: dict[str, str] | None = None,
           token: IssuedAccessToken = TOKEN) -> str:
    out = io.StringIO()
    write_token(token, fmt, destinations or TokenDestinations(), out, environ or {})
    return out.getvalue()


def test_github_format_masks_first_and_writes_only_the_files(tmp_path):
    output, env = tmp_path / "out", tmp_path / "env"
    environ = {"GITHUB_OUTPUT": str(output), "GITHUB_ENV": str(env)}
    dest = TokenDestinations(github_output="token", github_env="API_TOKEN")
    dest.validate("github", environ)
    assert render("github", dest, environ) == f"::add-mask::{TOKEN.access_token}\n"
    assert output.read_text() == f"token={TOKEN.access_token}\n"
    assert env.read_text() == f"API_TOKEN={TOKEN.access_token}\n"


def test_env_and_gitlab_formats_are_shell_safe(tmp_path):
    assert shlex.split(render("env")) == [f"WARDEN_ACCESS_TOKEN={TOKEN.access_token}"]
    assert shlex.split(render("gitlab", TokenDestinations(variable="T"))) == ["export", f"T={TOKEN.access_token}"]
    dotenv = tmp_path / "d.env"
    assert render("gitlab", TokenDestinations(gitlab_dotenv=str(dotenv))) == ""
    assert dotenv.read_text() == f"WARDEN_ACCESS_TOKEN={TOKEN.access_token}\n"


def test_default_and_json_formats_keep_the_former_output():
    assert render("text") == TOKEN.access_token + "\n"
    assert '"expires_in": 900' in render("json")


@given(st.text(min_size=1, max_size=40).filter(lambda t: any(c in t for c in "\n\r\"' $;`=")))
def test_a_token_that_could_inject_a_variable_is_never_written(value):
    bad = IssuedAccessToken("abc" + value + "x", "Bearer", 1, None)
    for fmt in ("env", "github", "gitlab"):
        with pytest.raises(CommandFailed):
            render(fmt, token=bad)


@pytest.mark.parametrize(("fmt", "dest", "environ", "message"), [
    ("github", TokenDestinations(github_output="t"), {}, "GITHUB_OUTPUT is not set"),
    ("github", TokenDestinations(github_env="t"), {}, "GITHUB_ENV is not set"),
    ("env", TokenDestinations(github_output="t"), {"GITHUB_OUTPUT": "/x"}, "go with --format github"),
    ("text", TokenDestinations(gitlab_dotenv="f"), {}, "goes with --format gitlab"),
    ("env", TokenDestinations(variable="A-B"), {}, "expected a variable name"),
    ("github", TokenDestinations(github_env="X\nY"), {"GITHUB_ENV": "/x"}, "expected a variable name"),
])
def test_destinations_that_do_not_fit_are_usage_errors(fmt, dest, environ, message):
    with pytest.raises(CommandFailed, match=message) as raised:
        dest.validate(fmt, environ)
    assert raised.value.exit_code == EXIT_USAGE


def test_issued_token_repr_hides_the_token():
    assert TOKEN.access_token not in repr(TOKEN)


@given(st.text(max_size=200))
def test_a_platform_token_from_the_environment_is_one_compact_value_or_a_usage_error(value):
    from warden.cli.platform_tokens import PlatformTokenError, token_from_env

    try:
        token = token_from_env("T", {"T": value})
    except PlatformTokenError as exc:
        assert exc.exit_code == EXIT_USAGE
    else:
        assert token == value.strip() and token.isascii() and not any(c.isspace() for c in token)


def test_a_missing_platform_token_says_which_variable_and_file():
    from warden.cli.platform_tokens import PlatformTokenError, token_from_env, token_from_file

    with pytest.raises(PlatformTokenError, match="CI_JOB_JWT_V2 is not set"):
        token_from_env("CI_JOB_JWT_V2", {})
    with pytest.raises(PlatformTokenError, match="/nonexistent/token"):
        token_from_file("/nonexistent/token")
