from pathlib import Path

import pytest

from warden.errors import ConfigError
from warden.settings import Secret, load_settings


def test_precedence_defaults_file_environment_overrides(tmp_path: Path):
    cfg = tmp_path / "w.toml"
    cfg.write_text('data_dir = "/from/file"\n[server]\nport = 9000\nworkers = 3\n[limits]\nclient_rate = 5\n')
    s = load_settings(str(cfg), {"WARDEN_SERVER_PORT": "9100", "WARDEN_LIMITS_CLIENT_RATE": "7.5"},
                      **{"server.workers": 2})
    assert s.data_dir == "/from/file" and s.server.port == 9100 and s.server.workers == 2
    assert s.limits.client_rate == 7.5 and s.issuer_url == "http://127.0.0.1:9100"


@pytest.mark.parametrize("text,key", [("bogus = 1", "bogus"), ("[server]\nprot = 1", "server.prot"),
                                      ("[server]\nport = 'x'", "server.port"), ("server = 3", "server"),
                                      ("[keys]\nrotation_interval = 'soon'", "keys.rotation_interval")])
def test_unknown_or_malformed_keys_name_the_key(tmp_path: Path, text: str, key: str):
    cfg = tmp_path / "w.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(str(cfg), {})


def test_secrets_are_hidden():
    s = load_settings(None, {"WARDEN_DATABASE_URL": "postgresql://u:hunter2@db/w",
                             "WARDEN_KEYS_ENCRYPTION_KEY": "c2VjcmV0"})
    assert "hunter2" not in repr(s) and "c2VjcmV0" not in repr(s)
    assert isinstance(s.database_url, Secret) and s.database_url.reveal().endswith("@db/w")


def test_plain_http_issuer_needs_loopback_or_dev_mode():
    with pytest.raises(ConfigError, match="issuer"):
        load_settings(None, {"WARDEN_ISSUER": "http://auth.example.com"})
    assert load_settings(None, {"WARDEN_ISSUER": "http://auth.example.com", "WARDEN_DEV_MODE": "true"}).dev_mode
    with pytest.raises(ConfigError):
        load_settings(None, {"WARDEN_ISSUER": "https://a.example/?q"})


def test_durations_in_sections_and_trusted_issuers(tmp_path: Path):
    cfg = tmp_path / "w.toml"
    cfg.write_text('[keys]\nrotation_interval = "7d"\n[client_auth]\nleeway = "10s"\n'
                   '[[trusted_issuers]]\nissuer = "https://k8s.example"\naudience = "warden"\n'
                   'max_token_lifetime = "2h"\n')
    s = load_settings(str(cfg), {"WARDEN_KEYS_PUBLISH_LEAD": "20m"})
    assert s.keys.rotation_interval == 7 * 86400 and s.keys.publish_lead == 1200
    assert s.client_auth.leeway == 10
    assert s.trusted_issuers[0].issuer == "https://k8s.example"
    assert s.trusted_issuers[0].max_token_lifetime == 7200 and s.trusted_issuers[0].single_use


@pytest.mark.parametrize("table,key", [('issuer = "https://a"\n', "audience"),
                                       ('issuer = "https://a"\naudience = "w"\nbogus = 1\n', "bogus"),
                                       ('issuer = "ftp://a"\naudience = "w"\n', "issuer"),
                                       ('issuer = "https://a"\naudience = "w"\njwks = {keys = []}\n', "jwks")])
def test_bad_trusted_issuers_name_the_key(tmp_path: Path, table: str, key: str):
    cfg = tmp_path / "w.toml"
    cfg.write_text("[[trusted_issuers]]\n" + table)
    with pytest.raises(ConfigError, match=key):
        load_settings(str(cfg), {})


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
def test_numbers_must_be_finite_and_non_negative(value: str):
    with pytest.raises(ConfigError, match=r"limits\.client_rate: expected a non-negative number"):
        load_settings(environ={"WARDEN_LIMITS_CLIENT_RATE": value})


def test_assertion_time_bounds_default_to_an_hour_long_and_five_minutes_old():
    s = load_settings(None, {})
    assert (s.client_auth.assertion_max_lifetime, s.client_auth.assertion_max_age) == (3600, 300)
    assert load_settings(None, {"WARDEN_CLIENT_AUTH_ASSERTION_MAX_AGE": "2m"}).client_auth.assertion_max_age == 120
    with pytest.raises(ConfigError, match=r"client_auth\.assertion_max_age"):
        load_settings(None, {"WARDEN_CLIENT_AUTH_ASSERTION_MAX_AGE": "0s"})


def test_secret_settings_can_come_from_files(tmp_path: Path):
    """systemd's LoadCredential and mounted secrets hand over files, not variables."""
    (tmp_path / "kek").write_text("c2VjcmV0\n")
    (tmp_path / "db").write_text("postgresql://u:hunter2@db/w")
    s = load_settings(None, {"WARDEN_KEYS_ENCRYPTION_KEY_FILE": str(tmp_path / "kek"),
                             "WARDEN_DATABASE_URL_FILE": str(tmp_path / "db")})
    assert s.keys.encryption_key == Secret("c2VjcmV0") and s.database_url == Secret("postgresql://u:hunter2@db/w")
    assert "hunter2" not in repr(s)


def test_secret_file_errors_name_the_variable(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"WARDEN_KEYS_ENCRYPTION_KEY_FILE .*missing"):
        load_settings(None, {"WARDEN_KEYS_ENCRYPTION_KEY_FILE": str(tmp_path / "missing")})
    (tmp_path / "kek").write_text("c2VjcmV0")
    with pytest.raises(ConfigError, match="not both"):
        load_settings(None, {"WARDEN_KEYS_ENCRYPTION_KEY_FILE": str(tmp_path / "kek"),
                             "WARDEN_KEYS_ENCRYPTION_KEY": "c2VjcmV0"})


def test_only_secret_settings_read_files(tmp_path: Path):
    (tmp_path / "issuer").write_text("https://auth.example")
    assert load_settings(None, {"WARDEN_ISSUER_FILE": str(tmp_path / "issuer")}).issuer is None


def test_http_limits_come_from_settings_and_reach_the_listener():
    from warden.server.worker import limits_for

    s = load_settings(environ={"WARDEN_SERVER_MAX_HEADERS": "12", "WARDEN_SERVER_MAX_HEADER_BYTES": "2048",
                               "WARDEN_SERVER_KEEP_ALIVE_TIMEOUT": "2.5", "WARDEN_SERVER_REQUEST_TIMEOUT": "4",
                               "WARDEN_SERVER_MAX_PIPELINED": "3", "WARDEN_SERVER_MAX_CONNECTIONS": "50"})
    limits = limits_for(s, 4096)
    assert (limits.max_headers, limits.max_header_bytes, limits.keep_alive_timeout, limits.request_timeout,
            limits.max_pipelined, limits.max_connections, limits.max_body_bytes) == (12, 2048, 2.5, 4.0, 3, 50, 4096)


@pytest.mark.parametrize("env,key", [
    ({"WARDEN_SERVER_MAX_HEADERS": "0"}, "server.max_headers"),
    ({"WARDEN_SERVER_MAX_HEADER_BYTES": "0"}, "server.max_header_bytes"),
    ({"WARDEN_SERVER_MAX_PIPELINED": "0"}, "server.max_pipelined"),
    ({"WARDEN_SERVER_REQUEST_TIMEOUT": "0"}, "server.request_timeout"),
    ({"WARDEN_SERVER_KEEP_ALIVE_TIMEOUT": "0"}, "server.keep_alive_timeout"),
    ({"WARDEN_STORE_REQUEST_TIMEOUT": "0"}, "store_request_timeout"),
    ({"WARDEN_REGISTRY_READY_STALENESS": "400"}, "registry_ready_staleness"),  # above registry_max_staleness
    ({"WARDEN_REGISTRY_READY_STALENESS": "0"}, "registry_ready_staleness"),
])
def test_server_limits_and_staleness_bounds_are_checked(env: dict[str, str], key: str):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(environ=env)


def test_serve_exports_no_secret_setting_to_the_environment():
    from warden.server.serve import settings_environment

    s = load_settings(environ={"WARDEN_DATABASE_URL": "postgresql://u:hunter2@db/w",
                               "WARDEN_REDIS_URL": "redis://:hunter2@r:6379/0"})
    env = settings_environment(s)
    assert "WARDEN_DATABASE_URL" not in env and not any("hunter2" in v for v in env.values())
    assert env["WARDEN_SERVER_PORT"] == "8080"


def test_pkcs11_key_settings_name_what_is_missing_and_hide_the_pin():
    pin = "4417-pin-canary"
    base = {"keys.backend": "pkcs11", "keys.pkcs11.module": "/x.so", "keys.pkcs11.token_label": "w"}
    with pytest.raises(ConfigError, match="pin or pin_file"):
        load_settings(environ={}, **base)
    with pytest.raises(ConfigError, match="pin or pin_file"):
        load_settings(environ={"WARDEN_KEYS_PKCS11_PIN": "1", "WARDEN_KEYS_PKCS11_PIN_FILE": "/p"}, **base)
    with pytest.raises(ConfigError, match=r"keys\.pkcs11\.token_label"):
        load_settings(environ={"WARDEN_KEYS_PKCS11_PIN": "1"}, **{**base, "keys.pkcs11.token_label": ""})
    with pytest.raises(ConfigError, match=r"keys\.backend"):
        load_settings(environ={"WARDEN_KEYS_BACKEND": "kms"})
    settings = load_settings(environ={"WARDEN_KEYS_PKCS11_PIN": pin}, **base)
    assert pin not in repr(settings) and settings.keys.pkcs11.pin is not None
