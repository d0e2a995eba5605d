"""agent.toml parsing: valid files load; unknown keys and unsafe settings are errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from warden.agent import TCPListen, UnixListen, load_agent_config
from warden.agent.config import parse_agent_config
from warden.errors import ConfigError


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "billing.secret"
    path.write_text("s3cr3t\n")
    return path


def credential(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "issuer": "https://as.example",
        "client_id": "billing",
        "client_secret_file": "billing.secret",
        "audience": "https://api.example",
        "scope": "read",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def parse(tmp_path: Path, listen: str = "127.0.0.1:4180", **top: object):
    credentials = top.pop("credentials", [credential()])
    return parse_agent_config({"listen": listen, "credentials": credentials, **top}, tmp_path)


def test_the_documented_example_loads(tmp_path, secret_file):
    (tmp_path / "run").mkdir()
    config_file = tmp_path / "agent.toml"
    config_file.write_text("""
listen = "127.0.0.1:4180"
[[credentials]]
issuer = "http://127.0.0.1:8080"
client_id = "billing"
client_secret_file = "billing.secret"
audience = "https://api.example"
scope = "read write"
token_file = "run/billing.token"
""")
    config = load_agent_config(config_file)
    assert config.listen == TCPListen("127.0.0.1", 4180)
    (cred,) = config.credentials
    assert cred.name == "billing" and cred.scope == ("read", "write")
    assert cred.client_secret_file == secret_file and cred.token_file == tmp_path / "run" / "billing.token"
    assert config.socket_mode == 0o600


def test_unknown_top_level_key_is_named(tmp_path, secret_file):
    with pytest.raises(ConfigError, match="unknown key 'lisen'"):
        parse_agent_config({"lisen": "x", "credentials": [credential()]}, tmp_path)


def test_unknown_credential_key_is_named(tmp_path, secret_file):
    with pytest.raises(ConfigError, match=r"credentials\[0\]: unknown key 'client_secret'"):
        parse(tmp_path, credentials=[credential(client_secret="inline secrets are not allowed")])


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:0", TCPListen("127.0.0.1", 0)),
        ("localhost:4180", TCPListen("127.0.0.1", 4180)),
        ("[::1]:4180", TCPListen("::1", 4180)),
        ("unix:/run/warden/agent.sock", UnixListen(Path("/run/warden/agent.sock"))),
    ],
)
def test_listen_accepts_loopback_and_unix_sockets(tmp_path, secret_file, listen, expected):
    assert parse(tmp_path, listen).listen == expected


@pytest.mark.parametrize(
    "listen",
    ["0.0.0.0:4180", "10.0.0.1:4180", "[::]:4180", "example.com:80", "127.0.0.1", "127.0.0.1:99999", "unix:"],
)
def test_listen_refuses_anything_reachable_from_the_network(tmp_path, secret_file, listen):
    with pytest.raises(ConfigError, match="listen"):
        parse(tmp_path, listen)


@pytest.mark.parametrize(
    ("mode", "ok"),
    [
        ("0600", True),
        ("0660", True),
        (0o640, True),
        ("0666", False),
        ("0604", False),
        ("0400", False),
        ("rw", False),
    ],
)
def test_socket_mode_never_opens_the_socket_to_others(tmp_path, secret_file, mode, ok):
    if ok:
        assert parse(tmp_path, "unix:/tmp/a.sock", socket_mode=mode).socket_mode == (
            int(mode, 8) if isinstance(mode, str) else mode
        )
    else:
        with pytest.raises(ConfigError, match="socket_mode"):
            parse(tmp_path, "unix:/tmp/a.sock", socket_mode=mode)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"client_id": None}, "client_id is required"),
        ({"issuer": None}, "issuer is required"),
        ({"issuer": "http://as.example"}, "issuer must use https"),
        ({"client_secret_file": None}, "exactly one of client_secret_file and private_key_file"),
        ({"private_key_file": "key.pem"}, "exactly one of"),
        ({"auth_method": "tls_client_auth"}, "auth_method must be one of"),
        ({"auth_method": "private_key_jwt"}, "does not fit"),
        ({"scope": "read  write"}, "scope"),
        ({"audience": "https://api.example#x"}, "fragment"),
        ({"token_file": "missing-dir/t.token"}, "token_file directory"),
        ({"ca_file": "missing.pem"}, "ca_file"),
        ({"allow_insecure_http": "yes"}, "allow_insecure_http"),
        ({"client_id": 42}, "client_id must be a non-empty string"),
    ],
)
def test_bad_credentials_are_refused_with_the_key_named(tmp_path, secret_file, overrides, message):
    with pytest.raises(ConfigError, match=message):
        parse(tmp_path, credentials=[credential(**overrides)])


def test_credentials_are_required(tmp_path):
    with pytest.raises(ConfigError, match="at least one"):
        parse_agent_config({"listen": "127.0.0.1:1"}, tmp_path)


def test_ambiguous_credentials_are_refused(tmp_path, secret_file):
    with pytest.raises(ConfigError, match="name 'billing' is used twice"):
        parse(tmp_path, credentials=[credential(), credential(scope="write")])
    with pytest.raises(ConfigError, match="already serves this audience and scope"):
        parse(tmp_path, credentials=[credential(), credential(name="other")])


def test_unreadable_or_invalid_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read agent config"):
        load_agent_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("listen = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_agent_config(bad)
