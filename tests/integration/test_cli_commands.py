"""CLI commands in-process against a SQLite data directory: output shapes, apply, key methods."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from warden.cli.main import main
from warden.jose import generate_private_key, public_jwk


@pytest.fixture
def run(tmp_path: Path, capsys, monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("WARDEN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WARDEN_AUDIT_SINK", str(tmp_path / "audit.jsonl"))

    assert main(["init", "--data-dir", str(tmp_path / "data")]) == 0
    capsys.readouterr()

    def invoke(*args: str, expect: int = 0) -> object:
        code = main([*args, "--data-dir", str(tmp_path / "data")])
        out, err = capsys.readouterr()
        assert code == expect, err
        return json.loads(out) if "--json" in args and out else (out, err)

    return invoke


def test_private_key_jwt_and_federated_clients_from_the_cli(run, tmp_path: Path):
    run("apis", "create", "https://api.example", "--scopes", "read", "--json")
    jwks = tmp_path / "client.jwks"
    jwks.write_text(json.dumps({"keys": [public_jwk(generate_private_key("ES256"), kid="k1", alg="ES256")]}))
    created = run("clients", "create", "signer", "--grant", "https://api.example=read", "--auth-method",
                  "private_key_jwt", "--jwks", str(jwks), "--json")
    assert "client_secret" not in created and created["metadata"]["jwks"]["keys"][0]["kid"] == "k1"
    fed = run("clients", "create", "pod", "--grant", "https://api.example=read", "--auth-method", "private_key_jwt",
              "--federated", "https://k8s.example=system:serviceaccount:ns:app", "--require-claim",
              "kubernetes.io/namespace=ns", "--json")
    assert fed["metadata"]["federated"][0]["claims"] == {"kubernetes.io/namespace": "ns"}
    private = tmp_path / "private.jwks"
    key = public_jwk(generate_private_key("ES256"), kid="k1")
    private.write_text(json.dumps({"keys": [dict(key, d="AAAA")]}))
    _, err = run("clients", "create", "bad", "--auth-method", "private_key_jwt", "--jwks", str(private), expect=2)
    assert "private key material" in err and "AAAA" not in err
    _, err = run("clients", "create", "bad", "--auth-method", "private_key_jwt", expect=2)
    assert "needs --jwks" in err
    _, err = run("clients", "create", "bad", "--jwks", str(jwks), expect=2)
    assert "private_key_jwt" in err
    _, err = run("clients", "create", "bad", "--auth-method", "private_key_jwt", "--jwks-uri", "http://evil.example/j",
                 expect=2)
    assert "https" in err


def test_apis_create_refuses_scopes_in_wardens_namespace(run):
    _, err = run("apis", "create", "https://api.example", "--scopes", "read warden:admin", expect=2)
    assert err.count("\n") == 1 and "reserved" in err and "warden:admin" in err
    assert run("apis", "list", "--json") == []


def test_listing_showing_rotating_and_revoking(run):
    run("apis", "create", "https://api.example", "--scopes", "read write", "--ttl", "5m", "--json")
    assert run("apis", "list", "--json")[0]["ttl"] == 300
    created = run("clients", "create", "svc", "--grant", "https://api.example=read,write", "--tenant", "acme", "--json")
    cid = created["client_id"]
    assert created["client_secret"].startswith("wsec_")
    shown = run("clients", "show", cid, "--json")
    assert shown["tenant"] == "acme" and shown["grants"][0]["scopes"] == ["read", "write"]
    assert "client_secret" not in shown
    rotated = run("clients", "secrets", "rotate", cid, "--grace", "1h", "--json")
    secrets = run("clients", "secrets", "list", cid, "--json")
    assert {s["state"] for s in secrets} == {"active"} and len(secrets) == 2
    assert all(rotated["client_secret"] not in json.dumps(s) for s in secrets)
    run("clients", "secrets", "revoke", cid, secrets[0]["secret_id"], "--json")
    assert {s["state"] for s in run("clients", "secrets", "list", cid, "--json")} == {"active", "revoked"}
    run("tokens", "revoke", "--client", cid, "--json")
    run("tokens", "revoke", "--jti", "abc", "--json")
    keys = run("keys", "list", "--json")
    assert {k["state"] for k in keys} == {"active", "next"}
    assert run("keys", "rotate", "--alg", "EdDSA", "--json")["activated"]
    run("clients", "disable", cid, "--json")
    assert run("clients", "list", "--json")[0]["enabled"] is False
    run("clients", "delete", cid, "--json")
    assert run("clients", "list", "--json") == []


def test_apply_twice_changes_nothing(run, tmp_path: Path):
    spec = tmp_path / "warden.toml"
    spec.write_text('[[apis]]\nidentifier = "https://api.example"\nscopes = ["read"]\n\n'
                    '[[clients]]\nclient_id = "billing"\ngrants = [{ api = "https://api.example", scopes = ["read"] }]\n')
    first = run("apply", str(spec), "--json")
    assert first["changes"] == ["create api https://api.example", "create client billing"]
    assert first["secrets"][0]["client_secret"].startswith("wsec_")
    second = run("apply", str(spec), "--json")
    assert second["changes"] == [] and second["secrets"] == []


# safe commands (issue 13 item 3) ------------------------------------------------------------
def _raw(*args: str) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command", [["apis", "list"], ["clients", "list"], ["clients", "show", "x"], ["keys", "list"],
                                     ["keys", "rotate"], ["tokens", "revoke", "--jti", "j"], ["export"],
                                     ["apis", "create", "https://a.example", "--scopes", "r"]])
def test_management_commands_refuse_a_missing_data_dir_and_create_nothing(run, tmp_path: Path, command):
    missing = tmp_path / "typo"
    code, _, err = _raw(*command, "--data-dir", str(missing))
    assert code == 2 and err.count("\n") == 1 and str(missing) in err
    assert not missing.exists()


def test_init_creates_the_data_dir_that_other_commands_then_use(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WARDEN_AUDIT_SINK", str(tmp_path / "audit.jsonl"))
    where = tmp_path / "fresh"
    assert _raw("init", "--data-dir", str(where))[0] == 0 and where.is_dir()
    assert _raw("apis", "list", "--data-dir", str(where))[0] == 0


def test_apis_create_refuses_an_existing_identifier_and_update_changes_it(run):
    run("apis", "create", "https://api.example", "--scopes", "read", "--ttl", "1h", "--alg", "RS256", "--json")
    _, err = run("apis", "create", "https://api.example", "--scopes", "read", "--ttl", "15m", expect=1)
    assert "already exists" in err and "apis update" in err
    api = run("apis", "list", "--json")[0]
    assert (api["ttl"], api["alg"]) == (3600, "RS256")  # untouched
    updated = run("apis", "update", "https://api.example", "--ttl", "30m", "--json")
    assert (updated["ttl"], updated["alg"], updated["scopes"], updated["changed"]) == (1800, "RS256", ["read"], True)
    _, err = run("apis", "update", "https://missing.example", "--ttl", "1m", expect=1)
    assert "no API" in err


def test_a_failing_apply_changes_nothing(run, tmp_path: Path):
    run("apis", "create", "https://api.example", "--scopes", "read write", "--json")
    run("clients", "create", "old", "--client-id", "old", "--grant", "https://api.example=read,write", "--json")
    spec = tmp_path / "bad.toml"
    # valid until the last step: the API update removes a scope the existing client `old` still holds
    spec.write_text('[[apis]]\nidentifier = "https://new.example"\nscopes = ["read"]\n\n'
                    '[[clients]]\nclient_id = "fresh"\ngrants = [{ api = "https://new.example", scopes = ["read"] }]\n\n'
                    '[[apis]]\nidentifier = "https://api.example"\nscopes = ["read"]\n')
    before = (run("apis", "list", "--json"), run("clients", "list", "--json"))
    for extra in ([], ["--dry-run"]):
        _, err = run("apply", str(spec), *extra, expect=2)
        assert "still granted" in err
        assert (run("apis", "list", "--json"), run("clients", "list", "--json")) == before


def test_apply_dry_run_prints_a_diff_and_prune_keeps_the_admin_api(run, tmp_path: Path):
    from warden.core.api import Api
    from warden.storage.engine import open_store

    store = open_store(None, str(tmp_path / "data"))
    store.save_api(Api("http://127.0.0.1:8080/admin/v1", ("warden:admin", "warden:admin:read"), token_ttl=300))
    store.close()
    run("apis", "create", "https://api.example", "--scopes", "read", "--ttl", "1h", "--json")
    spec = tmp_path / "w.toml"
    spec.write_text('[[apis]]\nidentifier = "https://api.example"\nscopes = ["read"]\nttl = "15m"\n')
    dry = run("apply", str(spec), "--prune", "--dry-run", "--json")
    assert dry["changes"] == ["update api https://api.example (ttl: 3600 -> 900)"]
    assert run("apis", "list", "--json")[1]["ttl"] == 3600
    run("apply", str(spec), "--prune", "--json")
    assert sorted(a["identifier"] for a in run("apis", "list", "--json")) == [
        "http://127.0.0.1:8080/admin/v1", "https://api.example"]


def test_apply_secrets_to_a_file_or_from_the_environment(run, tmp_path: Path, monkeypatch):
    spec = tmp_path / "w.toml"
    spec.write_text('[[apis]]\nidentifier = "https://api.example"\nscopes = ["read"]\n\n'
                    '[[clients]]\nclient_id = "billing"\ngrants = [{ api = "https://api.example", scopes = ["read"] }]\n')
    out_file = tmp_path / "secrets.json"
    result = run("apply", str(spec), "--secrets-file", str(out_file), "--json")
    assert result["secrets"] == [] and "wsec_" not in json.dumps(result)
    written = json.loads(out_file.read_text())
    assert written["billing"]["client_secret"].startswith("wsec_") and out_file.stat().st_mode & 0o077 == 0
    _, err = run("apply", str(spec), "--secrets-file", str(out_file), expect=2)  # never overwrites
    assert "already exists" in err
    spec.write_text(spec.read_text().replace('"billing"', '"billing-2"'))
    _, err = run("apply", str(spec), "--secrets-from-env", expect=2)
    assert "WARDEN_APPLY_SECRET_BILLING_2" in err
    monkeypatch.setenv("WARDEN_APPLY_SECRET_BILLING_2", "s" * 40)
    assert run("apply", str(spec), "--secrets-from-env", "--json")["secrets"] == []


def test_export_then_apply_changes_nothing(run, tmp_path: Path, capsys):
    run("apis", "create", "https://api.example", "--scopes", "read write", "--ttl", "5m", "--name", 'Or"ders',
        "--json")
    run("apis", "create", "https://b.example", "--scopes", "x", "--alg", "RS256", "--require-dpop", "--json")
    run("clients", "create", "svc", "--grant", "https://api.example=read,write", "--grant", "https://b.example=x",
        "--tenant", "acme", "--rate-limit", "2.5", "--json")
    jwks = tmp_path / "k.jwks"
    jwks.write_text(json.dumps({"keys": [public_jwk(generate_private_key("ES256"), kid="k1", alg="ES256")]}))
    run("clients", "create", "signer", "--auth-method", "private_key_jwt", "--jwks", str(jwks), "--json")
    cid = run("clients", "list", "--json")[0]["client_id"]
    run("clients", "disable", cid, "--json")
    out, _ = run("export")
    exported = tmp_path / "exported.toml"
    exported.write_text(out)
    assert "wsec_" not in out
    assert run("apply", str(exported), "--prune", "--json")["changes"] == []


def test_no_abbreviations_json_errors_help_examples_and_completion(run, tmp_path: Path):
    code, _, err = _raw("apis", "create", "https://a.example", "--scope", "read", "--data-dir", str(tmp_path / "data"))
    assert code == 2 and "required: --scopes" in err  # --scope is not taken as --scopes
    code, _, err = _raw("clients", "show", "nobody", "--json", "--data-dir", "/nonexistent/warden")
    assert code == 2 and json.loads(err)["error"].startswith("no data directory")
    code, _, err = _raw("clients", "bogus", "--json")
    assert code == 2 and "invalid choice" in json.loads(err)["error"]
    code, out, _ = _raw("apply", "--help")
    assert code == 0 and "examples:" in out and "warden apply warden.toml --dry-run" in out
    for shell in ("bash", "zsh", "fish"):
        code, out, _ = _raw("completion", shell)
        assert code == 0 and "secrets" in out and "--dry-run" in out.replace("-l dry-run", "--dry-run")


def test_apis_belong_to_a_tenant_and_grants_stay_inside_it(run):
    made = run("apis", "create", "https://acme.example", "--scopes", "read", "--tenant", "acme", "--json")
    assert made["tenant"] == "acme"
    run("apis", "create", "https://shared.example", "--scopes", "read", "--json")
    _, err = run("clients", "create", "x", "--tenant", "globex", "--grant", "https://acme.example=read", expect=2)
    assert err.count("\n") == 1 and "belongs to tenant acme" in err
    client = run("clients", "create", "app", "--tenant", "acme", "--grant", "https://acme.example=read",
                 "--grant", "https://shared.example=read", "--json")
    assert client["tenant"] == "acme"
    _, err = run("apis", "update", "https://acme.example", "--tenant", "globex", expect=2)
    assert "outside tenant globex" in err
    assert run("apis", "update", "https://acme.example", "--shared", "--json")["tenant"] is None
    assert run("apis", "update", "https://acme.example", "--tenant", "acme", "--json")["tenant"] == "acme"
    out, _ = run("apis", "list")
    assert "TENANT" in out.splitlines()[0] and "acme" in out
    with pytest.raises(SystemExit) as exited:  # argparse refuses the pair before any command runs
        run("apis", "update", "https://acme.example", "--tenant", "acme", "--shared")
    assert exited.value.code == 2


def test_token_exchange_is_allowed_and_refused_per_client_from_the_cli(run, tmp_path: Path):
    run("apis", "create", "https://api.example", "--scopes", "read", "--json")
    created = run("clients", "create", "broker", "--grant", "https://api.example=read", "--allow-token-exchange",
                  "--json")
    assert created["metadata"] == {"token_exchange": True}
    cid = created["client_id"]
    off = run("clients", "update", cid, "--no-allow-token-exchange", "--json")
    assert off["changed"] is True and "token_exchange" not in off["metadata"]
    assert run("clients", "update", cid, "--no-allow-token-exchange", "--json")["changed"] is False
    plain = run("clients", "create", "plain", "--grant", "https://api.example=read", "--json")
    on = run("clients", "update", plain["client_id"], "--allow-token-exchange", "--json")
    assert on["changed"] is True and on["metadata"] == {"token_exchange": True}
    out, _ = run("export")  # the permission survives export and apply
    exported = tmp_path / "exported.toml"
    exported.write_text(out)
    assert "token_exchange = true" in out
    assert run("apply", str(exported), "--json")["changes"] == []
    _, err = run("clients", "update", "nobody", "--allow-token-exchange", expect=1)
    assert "no client nobody" in err
