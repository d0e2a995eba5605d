"""Remote mode of the CLI against a real `warden serve`: every management command run with
`WARDEN_SERVER` (from an empty directory, no data directory) prints what it prints in local mode
and exits with the same code; plus wrong credentials, an unreachable server, private_key_jwt,
and that the admin client's secret shows up nowhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.integration.conftest import free_port
from tests.integration.test_cli_e2e import WARDEN, Served

pytestmark = pytest.mark.slow

SHARED_API = "https://shared.example"


@dataclass
class Setup:
    server: Served
    local: dict[str, str]  # env of local mode: the server's data directory
    remote: dict[str, str]  # env of remote mode: WARDEN_SERVER and the admin client, no data directory
    remote_cwd: Path
    admin_secret: str
    outputs: list[str]  # every remote stdout and stderr, to look for the secret in


def run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WARDEN, *args], check=False, env=env, capture_output=True, text=True, timeout=60,
                          cwd=cwd)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("remote")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    local = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    local |= {"WARDEN_DATA_DIR": str(base / "data"), "WARDEN_AUDIT_SINK": str(base / "audit.jsonl"),
              "WARDEN_ISSUER": issuer, "WARDEN_REGISTRY_POLL_INTERVAL": "0.25"}
    assert run(local, "init").returncode == 0
    server = Served(local, port)
    try:
        ops = json.loads(run(local, "clients", "create", "ops", "--client-id", "ops", "--grant",
                             f"{issuer}/admin/v1=warden:admin", "--json").stdout)
        for command in (["apis", "create", SHARED_API, "--scopes", "read write"],
                        ["clients", "create", "holder", "--client-id", "holder", "--grant", f"{SHARED_API}=read"]):
            created = run(local, *command)
            assert created.returncode == 0, created.stderr
        remote = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
        remote |= {"WARDEN_SERVER": issuer, "WARDEN_CLIENT_ID": "ops", "WARDEN_CLIENT_SECRET": ops["client_secret"]}
        cwd = base / "elsewhere"
        cwd.mkdir()
        yield Setup(server, local, remote, cwd, ops["client_secret"], [])
    finally:
        server.stop()


_VOLATILE = [
    (re.compile(r"mode-(local|remote)"), "mode-X"),
    (re.compile(r"wsec_[A-Za-z0-9]+"), "wsec_*"),
    (re.compile(r"sec_[0-9a-f]{12}"), "sec_*"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "TIME"),
    (re.compile(r"(es256|rs256|eddsa)-[0-9a-f]{16}"), r"\1-KID"),
    (re.compile(r"t=wcl_\S+"), "t=wcl_*"),
    (re.compile(r"\.\.\.[A-Za-z0-9]{4}\b"), "...HINT"),
    (re.compile(r"[ \t]+"), " "),  # table columns pad to the longest cell
]


def normal(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


# (setup commands run locally first, the command under test); {m} is mode-local or mode-remote and
# {sid} the id of client {m}-c's first secret
CASES: dict[str, tuple[list[str], str]] = {
    "apis create": ([], "apis create https://{m}.example --scopes read,write --ttl 10m"),
    "apis create --json": ([], "apis create https://{m}-j.example --scopes read --alg RS256 --json"),
    "apis create existing": (["apis create https://{m}-dup.example --scopes read"],
                             "apis create https://{m}-dup.example --scopes read"),
    "apis update": (["apis create https://{m}-u.example --scopes read"],
                    "apis update https://{m}-u.example --ttl 1h --scopes read,write"),
    "apis update --json unchanged": (["apis create https://{m}-uj.example --scopes read"],
                                     "apis update https://{m}-uj.example --json"),
    "apis update missing": ([], "apis update https://{m}-missing.example --ttl 1h"),
    "apis list": ([], "apis list"),
    "apis list --json": ([], "apis list --json"),
    "apis delete": (["apis create https://{m}-d.example --scopes read"], "apis delete https://{m}-d.example"),
    "apis delete granted": ([], f"apis delete {SHARED_API}"),
    "clients create": ([], f"clients create {{m}}-new --client-id {{m}}-new --grant {SHARED_API}=read --tenant t1"),
    "clients create --json": ([], f"clients create {{m}}-nj --client-id {{m}}-nj --grant {SHARED_API}=read,write "
                                  "--rate-limit 5 --json"),
    "clients create duplicate": ([f"clients create {{m}}-c --client-id {{m}}-dupc --grant {SHARED_API}=read"],
                                 f"clients create {{m}}-c --client-id {{m}}-dupc --grant {SHARED_API}=read"),
    "clients create bad scope": ([], f"clients create {{m}}-b --grant {SHARED_API}=delete"),
    "clients list": ([], "clients list"),
    "clients list --json": ([], "clients list --json"),
    "clients show": ([f"clients create {{m}}-c --client-id {{m}}-c --grant {SHARED_API}=read"],
                     "clients show {m}-c"),
    "clients show --json": ([f"clients create {{m}}-c --client-id {{m}}-cj --grant {SHARED_API}=read"],
                            "clients show {m}-cj --json"),
    "clients show missing": ([], "clients show {m}-nobody"),
    "clients disable": ([f"clients create {{m}}-c --client-id {{m}}-dis --grant {SHARED_API}=read"],
                        "clients disable {m}-dis --json"),
    "clients enable": ([f"clients create {{m}}-c --client-id {{m}}-en --grant {SHARED_API}=read",
                        "clients disable {m}-en"], "clients enable {m}-en"),
    "clients delete": ([f"clients create {{m}}-c --client-id {{m}}-del --grant {SHARED_API}=read"],
                       "clients delete {m}-del"),
    "clients delete missing": ([], "clients delete {m}-nobody"),
    "secrets rotate": ([f"clients create {{m}}-c --client-id {{m}}-rot --grant {SHARED_API}=read"],
                       "clients secrets rotate {m}-rot --grace 1h --json"),
    "secrets rotate bad grace": ([], "clients secrets rotate {m}-c --grace soon"),
    "secrets list": ([f"clients create {{m}}-c --client-id {{m}}-sl --grant {SHARED_API}=read"],
                     "clients secrets list {m}-sl"),
    "secrets list --json": ([f"clients create {{m}}-c --client-id {{m}}-slj --grant {SHARED_API}=read"],
                            "clients secrets list {m}-slj --json"),
    "secrets revoke": ([f"clients create {{m}}-c --client-id {{m}}-c --grant {SHARED_API}=read"],
                       "clients secrets revoke {m}-c {sid}"),
    "secrets revoke missing": ([], "clients secrets revoke {m}-c sec_000000000000"),
    "keys list": ([], "keys list --json"),
    "keys rotate": ([], "keys rotate --alg EdDSA"),
    "tokens revoke --jti": ([], "tokens revoke --jti {m}-jti --json"),
    "tokens revoke --client": ([f"clients create {{m}}-c --client-id {{m}}-rev --grant {SHARED_API}=read"],
                               "tokens revoke --client {m}-rev"),
    "tokens revoke missing client": ([], "tokens revoke --client {m}-nobody"),
    "apply": ([], "apply {file}"),
    "apply --dry-run --json": ([], "apply {file} --dry-run --json"),
    "apply again: no changes": (["apply {file} --secrets-file {m}-secrets.json"], "apply {file}"),
    "apply refused midway": ([], "apply {bad_file}"),
    "export": ([], "export"),
    "console login-url": ([], "console login-url --read-only --json"),
    # added by later issues: tenants, conditional access, token exchange, dynamic registration
    "apis create --tenant": ([], "apis create https://{m}-t.example --scopes read --tenant t1 --json"),
    "apis update --shared": (["apis create https://{m}-ts.example --scopes read --tenant t1"],
                             "apis update https://{m}-ts.example --shared --json"),
    "clients create conditions": ([], f"clients create {{m}}-ca --client-id {{m}}-ca --grant {SHARED_API}=read "
                                      "--allowed-ip 10.0.0.0/8 --max-token-lifetime 10m --allow-token-exchange --json"),
    "clients update": ([f"clients create {{m}}-c --client-id {{m}}-up --grant {SHARED_API}=read"],
                       "clients update {m}-up --name renamed --allowed-ip 192.0.2.0/24 --allow-token-exchange --json"),
    "clients update clear": ([f"clients create {{m}}-c --client-id {{m}}-upc --grant {SHARED_API}=read "
                              "--allowed-ip 10.0.0.0/8 --max-token-lifetime 10m --allow-token-exchange"],
                             "clients update {m}-upc --clear-allowed-ips --max-token-lifetime none "
                             "--no-allow-token-exchange"),
    "clients update missing": ([], "clients update {m}-nobody --name x"),
    "clients approve not pending": ([f"clients create {{m}}-c --client-id {{m}}-ap --grant {SHARED_API}=read"],
                                    "clients approve {m}-ap --json"),
    "clients list --pending": ([], "clients list --pending --json"),
    "registration-tokens create bad grant": ([], "registration-tokens create --grant https://{m}-nowhere.example=read"),
    "registration-tokens revoke missing": ([], "registration-tokens revoke rt_000000000000"),
}
# refusals whose wording the admin API gives in field names rather than CLI flags and hints
SAME_EXIT_ONLY = {"clients create bad scope", "registration-tokens create bad grant"}

APPLY = """
[[apis]]
identifier = "https://{m}-applied.example"
scopes = ["read"]
ttl = "5m"

[[clients]]
client_id = "{m}-applied"
tenant = "acme"
grants = [{{ api = "https://{m}-applied.example", scopes = ["read"] }}]
"""
# valid as a file, refused by the store's rules after the API is written: apply must change nothing
APPLY_BAD = """
[[apis]]
identifier = "https://{m}-half.example"
scopes = ["read"]

[[clients]]
client_id = "{m}-half"
grants = [{{ api = "https://{m}-half.example", scopes = ["read"] }}, {{ api = "https://{m}-half.example", scopes = ["read"] }}]
"""


def expand(template: str, mode: str, setup: Setup, where: Path) -> list[str]:
    m = f"mode-{mode}"
    values = {"m": m, "sid": "", "file": str(where / f"{m}.toml"), "bad_file": str(where / f"{m}-bad.toml")}
    (where / f"{m}.toml").write_text(APPLY.format(m=m))
    (where / f"{m}-bad.toml").write_text(APPLY_BAD.format(m=m))
    if "{sid}" in template:
        listed = run(setup.local, "clients", "secrets", "list", f"{m}-c", "--json")
        values["sid"] = json.loads(listed.stdout)[0]["secret_id"]
    return [part.format(**values) for part in template.split()]


@pytest.mark.parametrize("case", list(CASES))
def test_remote_command_prints_and_exits_as_local_mode(setup: Setup, case: str, tmp_path: Path) -> None:
    before, command = CASES[case]
    answers = {}
    for mode, env, cwd in (("local", setup.local, None), ("remote", setup.remote, setup.remote_cwd)):
        for step in before:
            done = run(setup.local, *expand(step, mode, setup, tmp_path), cwd=tmp_path)
            assert done.returncode == 0 or "already exists" in done.stderr, done.stderr
        answers[mode] = run(env, *expand(command, mode, setup, tmp_path), cwd=cwd or tmp_path)
        if mode == "remote":
            setup.outputs += [answers[mode].stdout, answers[mode].stderr]
    local, remote = answers["local"], answers["remote"]
    assert remote.returncode == local.returncode, (local.stderr, remote.stderr)
    assert normal(remote.stdout) == normal(local.stdout)
    if local.returncode:
        assert remote.stderr.startswith("warden: error: ") and remote.stderr.count("\n") == 1, remote.stderr
        if case not in SAME_EXIT_ONLY:
            assert normal(remote.stderr) == normal(local.stderr)
    else:
        assert remote.stderr == local.stderr == ""
    assert list(setup.remote_cwd.iterdir()) == []  # remote mode wrote nothing where it ran
    assert not Path(setup.remote_cwd.parent / "warden-data").exists()


def test_apply_refused_midway_changes_nothing_on_the_server(setup: Setup, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(APPLY_BAD.format(m="mode-atomic"))
    before = run(setup.local, "export").stdout
    refused = run(setup.remote, "apply", str(bad), cwd=setup.remote_cwd)
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1
    assert run(setup.local, "export").stdout == before
    assert "mode-atomic" not in run(setup.remote, "apis", "list", cwd=setup.remote_cwd).stdout


def test_export_then_apply_remotely_changes_nothing(setup: Setup, tmp_path: Path) -> None:
    exported = run(setup.remote, "export", cwd=setup.remote_cwd)
    assert exported.returncode == 0
    path = tmp_path / "exported.toml"
    path.write_text(exported.stdout)
    again = run(setup.remote, "apply", str(path), "--json", cwd=setup.remote_cwd)
    assert json.loads(again.stdout)["changes"] == []


def test_wrong_credentials_are_one_line_and_never_echo_the_secret(setup: Setup) -> None:
    wrong = "wsec_" + "W" * 42
    answer = run(setup.remote | {"WARDEN_CLIENT_SECRET": wrong}, "clients", "list", cwd=setup.remote_cwd)
    assert answer.returncode == 1 and answer.stdout == ""
    assert answer.stderr.startswith("warden: error: ") and answer.stderr.count("\n") == 1
    assert "invalid_client" in answer.stderr and wrong not in answer.stderr
    unknown = run(setup.remote | {"WARDEN_CLIENT_ID": "nobody"}, "apis", "list", "--json", cwd=setup.remote_cwd)
    assert unknown.returncode == 1 and json.loads(unknown.stderr)["error"]
    no_id = run({k: v for k, v in setup.remote.items() if k != "WARDEN_CLIENT_ID"}, "apis", "list",
                cwd=setup.remote_cwd)
    assert no_id.returncode == 2 and "WARDEN_CLIENT_ID" in no_id.stderr


def test_a_client_without_the_admin_scope_is_refused_in_one_line(setup: Setup) -> None:
    reader = json.loads(run(setup.local, "clients", "create", "reader", "--grant",
                            f"{setup.server.url}/admin/v1=warden:admin:read", "--json").stdout)
    env = setup.remote | {"WARDEN_CLIENT_ID": reader["client_id"], "WARDEN_CLIENT_SECRET": reader["client_secret"]}
    assert run(env, "apis", "list", cwd=setup.remote_cwd).returncode == 0
    refused = run(env, "apis", "delete", SHARED_API, cwd=setup.remote_cwd)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "warden:admin" in refused.stderr


def test_unreachable_server_is_one_line(setup: Setup) -> None:
    answer = run(setup.remote | {"WARDEN_SERVER": f"http://127.0.0.1:{free_port()}"}, "apis", "list",
                 cwd=setup.remote_cwd)
    assert answer.returncode == 1 and answer.stdout == ""
    assert answer.stderr.startswith("warden: error: cannot get an admin token from http://127.0.0.1:")
    assert answer.stderr.count("\n") == 1 and setup.admin_secret not in answer.stderr
    bad_url = run(setup.remote | {"WARDEN_SERVER": "ftp://x"}, "apis", "list", cwd=setup.remote_cwd)
    assert bad_url.returncode == 2 and bad_url.stderr.count("\n") == 1


def test_secret_file_and_the_flag_work_and_the_secret_stays_out_of_argv_and_output(setup: Setup,
                                                                                  tmp_path: Path) -> None:
    secret_file = tmp_path / "ops.secret"
    secret_file.write_text(setup.admin_secret + "\n")
    env = {k: v for k, v in setup.remote.items() if k not in ("WARDEN_SERVER", "WARDEN_CLIENT_SECRET")}
    argv = ["--server", setup.server.url, "clients", "list", "--client-secret-file", str(secret_file)]
    answer = run(env, *argv, cwd=setup.remote_cwd)
    assert answer.returncode == 0, answer.stderr
    assert "ops" in answer.stdout
    assert setup.admin_secret not in " ".join(argv)  # the only way to pass it is a file or the environment
    for text in [answer.stdout, answer.stderr, *setup.outputs]:
        assert setup.admin_secret not in text
    audit = Path(setup.local["WARDEN_AUDIT_SINK"]).read_text() if Path(setup.local["WARDEN_AUDIT_SINK"]).exists() else ""
    assert setup.admin_secret not in audit
    local_flag = run(setup.local, "apis", "list", "--client-secret-file", str(secret_file))
    assert local_flag.returncode == 2 and "remote mode" in local_flag.stderr


def test_private_key_jwt_admin_client(setup: Setup, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "admin.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwks = tmp_path / "admin.jwks"
    jwks.write_text(json.dumps({"keys": [public | {"kid": "k1", "alg": "ES256", "use": "sig"}]}))
    created = run(setup.local, "clients", "create", "keyed-ops", "--client-id", "keyed-ops", "--auth-method",
                  "private_key_jwt", "--jwks", str(jwks), "--grant", f"{setup.server.url}/admin/v1=warden:admin")
    assert created.returncode == 0, created.stderr
    env = {k: v for k, v in setup.remote.items() if k != "WARDEN_CLIENT_SECRET"} | {"WARDEN_CLIENT_ID": "keyed-ops"}
    listed = run(env, "clients", "list", "--private-key-file", str(pem), "--key-id", "k1", cwd=setup.remote_cwd)
    assert listed.returncode == 0, listed.stderr
    assert "keyed-ops" in listed.stdout
    # warden token takes the key with the same flags
    fetched = run(env, "token", "--issuer", setup.server.url, "--client-id", "keyed-ops", "--private-key-file",
                  str(pem), "--key-id", "k1", "--audience", f"{setup.server.url}/admin/v1", "--json")
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(fetched.stdout)["scope"] == "warden:admin"
    assert list(setup.remote_cwd.iterdir()) == []


def test_remote_mode_works_on_the_base_install(setup: Setup) -> None:
    """The server extra's packages hidden (as on `pip install warden-m2m`): remote mode still manages."""
    import sys

    from tests.unit.test_cli_extras import HIDE

    from warden.cli.extras import SERVER_MODULES

    hidden = (*SERVER_MODULES, "psycopg", "redis", "uvloop")
    code = HIDE.format(hidden=hidden, argv=["clients", "list", "--json"])
    answer = subprocess.run([sys.executable, "-c", code], check=False, env=setup.remote, capture_output=True,
                            text=True, timeout=60, cwd=setup.remote_cwd)
    assert answer.returncode == 0, answer.stderr
    assert "ops" in [c["client_id"] for c in json.loads(answer.stdout)]
    assert list(setup.remote_cwd.iterdir()) == []


def test_local_mode_flags_are_refused_in_remote_mode(setup: Setup) -> None:
    answer = run(setup.remote, "apis", "list", "--data-dir", str(setup.remote_cwd / "d"), cwd=setup.remote_cwd)
    assert answer.returncode == 2 and "--data-dir is for local mode" in answer.stderr
    assert list(setup.remote_cwd.iterdir()) == []


def test_a_tenant_admin_manages_only_its_tenant_through_the_remote_cli(setup: Setup) -> None:
    """Issue 14's tenant-scoped administration through the remote CLI: an admin client of tenant
    `acme` lists, creates and changes acme's clients only; another tenant's client is 404 and
    creating into another tenant is refused, each in one line with a non-zero exit."""
    admin_api = f"{setup.server.url}/admin/v1"
    acme_admin = json.loads(run(setup.local, "clients", "create", "acme-ops", "--tenant", "acme", "--grant",
                                f"{admin_api}=warden:admin", "--json").stdout)
    other = json.loads(run(setup.local, "clients", "create", "globex-app", "--tenant", "globex", "--grant",
                           f"{SHARED_API}=read", "--json").stdout)
    env = setup.remote | {"WARDEN_CLIENT_ID": acme_admin["client_id"],
                          "WARDEN_CLIENT_SECRET": acme_admin["client_secret"]}
    made = run(env, "clients", "create", "acme-app", "--grant", f"{SHARED_API}=read", "--json", cwd=setup.remote_cwd)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["tenant"] == "acme"  # a tenant admin's clients are its tenant's
    listed = json.loads(run(env, "clients", "list", "--json", cwd=setup.remote_cwd).stdout)
    assert {c["tenant"] for c in listed} == {"acme"} and other["client_id"] not in {c["client_id"] for c in listed}
    hidden = run(env, "clients", "show", other["client_id"], cwd=setup.remote_cwd)
    assert hidden.returncode == 1 and hidden.stderr.count("\n") == 1 and "no client" in hidden.stderr
    moved = run(env, "clients", "create", "sneaky", "--tenant", "globex", "--grant", f"{SHARED_API}=read",
                cwd=setup.remote_cwd)
    assert moved.returncode == 1 and moved.stderr.count("\n") == 1 and "acme" in moved.stderr
    revoked = run(env, "tokens", "revoke", "--client", other["client_id"], cwd=setup.remote_cwd)
    assert revoked.returncode == 1
    assert acme_admin["client_secret"] not in made.stdout + made.stderr + hidden.stderr + moved.stderr
