"""`warden token` in CI/CD pipelines: output formats, exit codes, and GitHub Actions / GitLab CI OIDC tokens
as workload identity.

Two local issuers stand in for the platforms: each is a real HTTP server serving OpenID discovery and a
JWKS, minting tokens with that platform's claim shape; the GitHub one also answers the Actions runtime's
token request (`ACTIONS_ID_TOKEN_REQUEST_URL`, bearer `ACTIONS_ID_TOKEN_REQUEST_TOKEN`). The real server
trusts both, clients are bound to their subjects with required claims, and `warden token` runs as a
subprocess, as a pipeline step would run it.
"""

from __future__ import annotations

import http.server
import json
import os
import secrets
import shlex
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import pytest
from tests.integration.conftest import JsonServer, LiveServer, free_port

from warden.core.client_metadata import parse_client_metadata
from warden.jose import generate_private_key, public_jwk
from warden.resource import Validator
from warden.services.admin import GrantSpec

WARDEN = [sys.executable, "-m", "warden.cli.main"]
GITHUB_SUB = "repo:acme/billing:environment:production"  # a job with an environment
GITHUB_REF_SUB = "repo:acme/billing:ref:refs/heads/main"  # a job without one
GITLAB_SUB = "project_path:acme/billing:ref_type:branch:ref:main"
GITLAB_AUD = "https://warden.example"


class PlatformIssuer(JsonServer):
    """A CI platform's OIDC issuer: discovery, JWKS, and (GitHub) the runtime's token request endpoint."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.key = generate_private_key("RS256")
        self.kid = f"{kind}-1"
        self.request_token = secrets.token_urlsafe(16)
        self.claims: dict[str, Any] = {}  # overrides of the next minted tokens
        self.requests: list[str] = []
        super().__init__(self._route)

    def _route(self, path: str, headers: Any) -> tuple[int, Any]:
        parts = urlsplit(path)
        self.requests.append(parts.path)
        if parts.path == "/.well-known/openid-configuration":
            return 200, {"issuer": self.url, "jwks_uri": f"{self.url}/.well-known/jwks"}
        if parts.path == "/.well-known/jwks":
            return 200, {"keys": [public_jwk(self.key, kid=self.kid, alg="RS256")]}
        if parts.path == "/_apis/distributedtask/token" and self.kind == "github":
            if headers.get("authorization") != f"Bearer {self.request_token}":
                return 401, {"message": "bad request token"}
            return 200, {"count": 1, "value": self.github(aud=parse_qs(parts.query).get("audience", [""])[0])}
        return 404, {}

    def _mint(self, claims: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "iat": now, "nbf": now, "exp": now + 300, "jti": uuid.uuid4().hex, **claims,
                  **self.claims}
        return pyjwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def github(self, aud: str = "warden", ref: str = "refs/heads/main", environment: str | None = "production") -> str:
        """The claim shape of a GitHub Actions OIDC token (the subject names the environment when the job has one)."""
        sub = f"repo:acme/billing:environment:{environment}" if environment else f"repo:acme/billing:ref:{ref}"
        return self._mint({
            "sub": sub, "aud": aud, "repository": "acme/billing",
            "repository_owner": "acme", "repository_id": "74", "repository_visibility": "private",
            "ref": ref, "ref_type": "branch", "sha": "e4f2b1c", "workflow": "deploy",
            "workflow_ref": f"acme/billing/.github/workflows/deploy.yml@{ref}",
            "job_workflow_ref": f"acme/billing/.github/workflows/deploy.yml@{ref}", "event_name": "push",
            "actor": "octocat", "run_id": "1234", "run_attempt": "1", "runner_environment": "github-hosted",
            **({"environment": environment} if environment else {})})

    def gitlab(self, ref: str = "main", ref_protected: str = "true") -> str:
        """The claim shape of a GitLab CI `id_tokens` token."""
        return self._mint({
            "sub": f"project_path:acme/billing:ref_type:branch:ref:{ref}", "aud": GITLAB_AUD,
            "namespace_id": "7", "namespace_path": "acme", "project_id": "22", "project_path": "acme/billing",
            "user_login": "alice", "pipeline_id": "991", "pipeline_source": "push", "job_id": "4242",
            "ref": ref, "ref_type": "branch", "ref_protected": ref_protected,
            "ci_config_ref_uri": f"gitlab.example/acme/billing//.gitlab-ci.yml@refs/heads/{ref}",
            "runner_environment": "gitlab-hosted", "environment": "production"})


@pytest.fixture
def github() -> Any:
    issuer = PlatformIssuer("github")
    yield issuer
    issuer.close()


@pytest.fixture
def gitlab() -> Any:
    issuer = PlatformIssuer("gitlab")
    yield issuer
    issuer.close()


@pytest.fixture
def server(start_server, github: PlatformIssuer, gitlab: PlatformIssuer) -> LiveServer:
    return start_server("sqlite", dev_mode=True, trusted_issuers=[
        {"issuer": github.url, "audience": "warden", "max_token_lifetime": "1h"},
        {"issuer": gitlab.url, "audience": GITLAB_AUD, "max_token_lifetime": "1h"}])


def federated_client(server: LiveServer, issuer: str, subject: str, claims: dict[str, str]) -> tuple[str, str]:
    api = server.api("deploy read")
    meta = parse_client_metadata({"federated": [{"issuer": issuer, "subject": subject, "claims": claims}]})
    client, secret = server.admin.create_client("ci", [GrantSpec(api, ("deploy",))], auth_method="private_key_jwt",
                                                metadata=meta)
    assert secret is None
    server.wait_for_client(client.client_id)
    return client.client_id, api


def warden_token(server: LiveServer, client_id: str, *args: str, env: dict[str, str] | None = None,
                 issuer: str | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WARDEN_", "GITHUB_", "ACTIONS_"))}
    proc = subprocess.run([*WARDEN, "token", "--issuer", issuer or server.issuer, "--client-id", client_id,
                           "--attempts", "1", *args], env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=60, check=False)
    assert "eyJ" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr  # never a token on stderr
    return proc


def validate(server: LiveServer, token: str, api: str) -> dict[str, Any]:
    return dict(Validator(issuer=server.issuer, audience=api).validate(token, scopes=["deploy"]).payload)


def github_env(github: PlatformIssuer, tmp_path: Path) -> dict[str, str]:
    out, env = tmp_path / "github_output", tmp_path / "github_env"
    out.write_text("")
    env.write_text("")
    return {"ACTIONS_ID_TOKEN_REQUEST_URL": f"{github.url}/_apis/distributedtask/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": github.request_token, "GITHUB_OUTPUT": str(out),
            "GITHUB_ENV": str(env)}


# GitHub Actions -----------------------------------------------------------------------------------
def test_github_actions_oidc_token_gets_an_access_token_masked_before_it_is_written(
        server: LiveServer, github: PlatformIssuer, tmp_path: Path):
    cid, api = federated_client(server, github.url, GITHUB_SUB,
                                {"repository": "acme/billing", "ref": "refs/heads/main", "workflow": "deploy"})
    env = github_env(github, tmp_path)
    proc = warden_token(server, cid, "--audience", api, "--scope", "deploy", "--github-oidc-audience", "warden",
                        "--format", "github", "--github-output", "token", "--github-env", "WARDEN_TOKEN", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("::add-mask::") and len(lines) == 1  # the mask, and nothing else holds the token
    token = lines[0].removeprefix("::add-mask::")
    assert Path(env["GITHUB_OUTPUT"]).read_text() == f"token={token}\n"
    assert Path(env["GITHUB_ENV"]).read_text() == f"WARDEN_TOKEN={token}\n"
    claims = validate(server, token, api)
    assert claims["client_id"] == cid and claims["scope"] == "deploy"
    assert "/_apis/distributedtask/token" in github.requests  # asked the runtime, for audience warden


def test_github_format_without_a_destination_prints_the_mask_first_then_the_token(
        server: LiveServer, github: PlatformIssuer, tmp_path: Path):
    cid, api = federated_client(server, github.url, GITHUB_REF_SUB, {"repository": "acme/billing"})
    token_file = tmp_path / "oidc.jwt"
    token_file.write_text(github.github(environment=None) + "\n")
    proc = warden_token(server, cid, "--federated-token-file", str(token_file), "--format", "github")
    assert proc.returncode == 0, proc.stderr
    mask, printed = proc.stdout.splitlines()
    assert mask == f"::add-mask::{printed}"
    validate(server, printed, api)


def test_github_token_whose_required_claim_differs_is_refused_with_exit_3(
        server: LiveServer, github: PlatformIssuer, tmp_path: Path):
    cid, _ = federated_client(server, github.url, GITHUB_SUB, {"ref": "refs/heads/main", "workflow": "deploy"})
    github.claims = {"ref": "refs/heads/feature"}  # the production environment, from another branch
    env = github_env(github, tmp_path)
    proc = warden_token(server, cid, "--github-oidc-audience", "warden", "--format", "github",
                        "--github-output", "token", env=env)
    assert proc.returncode == 3 and "invalid_client" in proc.stderr
    assert proc.stdout == "" and Path(env["GITHUB_OUTPUT"]).read_text() == ""
    github.claims = {}
    staging = tmp_path / "staging.jwt"
    staging.write_text(github.github(environment="staging"))  # another subject
    assert warden_token(server, cid, "--federated-token-file", str(staging)).returncode == 3
    wrong_audience = tmp_path / "aud.jwt"
    wrong_audience.write_text(github.github(aud="sts.amazonaws.com"))
    assert warden_token(server, cid, "--federated-token-file", str(wrong_audience)).returncode == 3
    reasons = {e.get("reason") for e in server.audit_events() if e["event"] == "client.authentication_failed"}
    assert {"federation_claims", "federation_not_bound", "assertion_aud"} <= reasons


def test_github_actions_without_id_token_permission_is_a_usage_error(server: LiveServer, github: PlatformIssuer,
                                                                     tmp_path: Path):
    cid, _ = federated_client(server, github.url, GITHUB_SUB, {})
    proc = warden_token(server, cid, "--github-oidc-audience", "warden")
    assert proc.returncode == 2 and "id-token: write" in proc.stderr
    env = {**github_env(github, tmp_path), "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "wrong"}
    proc = warden_token(server, cid, "--github-oidc-audience", "warden", env=env)
    assert proc.returncode == 2 and "HTTP 401" in proc.stderr


# GitLab CI ----------------------------------------------------------------------------------------
def test_gitlab_id_token_gets_an_access_token_into_a_dotenv_report(server: LiveServer, gitlab: PlatformIssuer,
                                                                   tmp_path: Path):
    cid, api = federated_client(server, gitlab.url, GITLAB_SUB,
                                {"project_path": "acme/billing", "ref_protected": "true", "namespace_path": "acme"})
    dotenv = tmp_path / "warden.env"
    env = {"WARDEN_ID_TOKEN": gitlab.gitlab()}
    proc = warden_token(server, cid, "--audience", api, "--federated-token-env", "WARDEN_ID_TOKEN", "--format",
                        "gitlab", "--gitlab-dotenv", str(dotenv), env=env)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    name, _, token = dotenv.read_text().rstrip("\n").partition("=")
    assert name == "WARDEN_ACCESS_TOKEN" and validate(server, token, api)["client_id"] == cid
    assert dotenv.stat().st_mode & 0o077 == 0

    proc = warden_token(server, cid, "--audience", api, "--federated-token-env", "WARDEN_ID_TOKEN", "--format",
                        "gitlab", "--variable", "API_TOKEN", env={"WARDEN_ID_TOKEN": gitlab.gitlab()})
    assert proc.returncode == 0, proc.stderr
    words = shlex.split(proc.stdout)
    assert words[0] == "export" and words[1].startswith("API_TOKEN=")
    validate(server, words[1].removeprefix("API_TOKEN="), api)


def test_gitlab_token_from_an_unprotected_branch_is_refused(server: LiveServer, gitlab: PlatformIssuer):
    cid, _ = federated_client(server, gitlab.url, GITLAB_SUB, {"ref_protected": "true"})
    proc = warden_token(server, cid, "--federated-token-env", "T", env={"T": gitlab.gitlab(ref_protected="false")})
    assert proc.returncode == 3
    proc = warden_token(server, cid, "--federated-token-env", "UNSET_VARIABLE")
    assert proc.returncode == 2 and "UNSET_VARIABLE is not set" in proc.stderr


# formats with a secret, and exit codes --------------------------------------------------------------
def test_env_json_and_default_formats(server: LiveServer):
    api = server.api("deploy")
    cid, secret = server.client({api: "deploy"})
    env = {"WARDEN_CLIENT_SECRET": secret}
    default = warden_token(server, cid, env=env)
    assert default.returncode == 0 and default.stdout.count("\n") == 1
    validate(server, default.stdout.strip(), api)
    as_json = json.loads(warden_token(server, cid, "--json", env=env).stdout)
    assert json.loads(warden_token(server, cid, "--format", "json", env=env).stdout).keys() == as_json.keys()
    assert as_json["token_type"] == "Bearer" and as_json["scope"] == "deploy" and as_json["expires_in"] > 0
    shell = warden_token(server, cid, "--format", "env", env=env)
    assert shell.returncode == 0
    out = subprocess.run(["sh", "-c", 'eval "$(cat)"; printf %s "$WARDEN_ACCESS_TOKEN"'], input=shell.stdout,
                         capture_output=True, text=True, check=True).stdout
    validate(server, out, api)


def test_exit_codes_tell_refused_from_unavailable_from_usage(server: LiveServer, tmp_path: Path):
    api = server.api("deploy")
    cid, secret = server.client({api: "deploy"})
    wrong = warden_token(server, cid, env={"WARDEN_CLIENT_SECRET": secret[:-1] + ("A" if secret[-1] != "A" else "B")})
    assert wrong.returncode == 3 and "invalid_client" in wrong.stderr
    scope = warden_token(server, cid, "--scope", "admin", env={"WARDEN_CLIENT_SECRET": secret})
    assert scope.returncode == 5 and "invalid_scope" in scope.stderr
    down = warden_token(server, cid, issuer=f"http://127.0.0.1:{free_port()}", env={"WARDEN_CLIENT_SECRET": secret})
    assert down.returncode == 4 and "network_error" in down.stderr
    with Failing(503) as failing:
        busy = warden_token(server, cid, issuer=failing.url, env={"WARDEN_CLIENT_SECRET": secret})
    assert busy.returncode == 4 and "503" in busy.stderr
    usage = [("--format", "github", "--github-output", "token"),  # no $GITHUB_OUTPUT
             ("--format", "env", "--github-env", "X"),
             ("--format", "github", "--github-env", "bad-name"),
             ("--format", "yaml"),
             ("--federated-token-file", str(tmp_path / "missing.jwt"))]
    for args in usage:
        proc = warden_token(server, cid, *args, env={"WARDEN_CLIENT_SECRET": secret})
        assert proc.returncode == 2 and proc.stdout == "", (args, proc.stderr)
        assert proc.stderr.count("\n") == 1


class Failing:
    """An authorization server that publishes metadata and answers every token request with `status`."""

    def __init__(self, status: int) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"issuer": outer.url, "token_endpoint": f"{outer.url}/oauth2/token"}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
