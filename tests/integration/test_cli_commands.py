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
