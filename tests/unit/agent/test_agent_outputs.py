"""Metrics exposition, the token file sink, and credential rotation detection."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from warden.agent._credential import ManagedCredential, file_stamp
from warden.agent._metrics import MetricFamily, render_metrics
from warden.agent._token_file import remove_token_file, write_token_file
from warden.agent.config import CredentialConfig
from warden.client import ClientCredentials, Secret


def test_metrics_render_in_prometheus_text_format():
    hits = MetricFamily("warden_agent_cache_hits_total", "counter", "Hits.")
    hits.add(3, credential='we"ird\\name\n')
    gauge = MetricFamily("warden_agent_token_expiry_seconds", "gauge", "Expiry.")
    gauge.add(12.5, credential="a", audience="https://api.example", scope="read write")
    empty = MetricFamily("warden_agent_unused_total", "counter", "Nothing yet.")
    text = render_metrics([hits, gauge, empty])
    assert text.splitlines() == [
        "# HELP warden_agent_cache_hits_total Hits.",
        "# TYPE warden_agent_cache_hits_total counter",
        'warden_agent_cache_hits_total{credential="we\\"ird\\\\name\\n"} 3',
        "# HELP warden_agent_token_expiry_seconds Expiry.",
        "# TYPE warden_agent_token_expiry_seconds gauge",
        (
            'warden_agent_token_expiry_seconds{credential="a",audience="https://api.example",'
            'scope="read write"} 12.5'
        ),
        "# HELP warden_agent_unused_total Nothing yet.",
        "# TYPE warden_agent_unused_total counter",
    ]
    assert text.endswith("\n")


def test_token_file_is_written_0600_and_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / "billing.token"
    write_token_file(path, "at-1")
    assert path.read_text() == "at-1" and stat.S_IMODE(path.stat().st_mode) == 0o600
    first_inode = path.stat().st_ino
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: os.PathLike[str]) -> None:
        assert stat.S_IMODE(os.stat(src).st_mode) == 0o600 and Path(src).read_text() == "at-2"
        assert Path(src).parent == tmp_path  # same directory, so the rename is atomic
        replaced.append((src, os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_token_file(path, "at-2")
    assert path.read_text() == "at-2" and replaced and path.stat().st_ino != first_inode
    assert [p.name for p in tmp_path.iterdir()] == ["billing.token"]  # no temporary left behind


def test_failed_token_file_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "t.token"
    write_token_file(path, "old")

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_token_file(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.token"]
    remove_token_file(path)
    remove_token_file(path)
    assert not path.exists()


class Factory:
    def __init__(self) -> None:
        self.built: list[Secret] = []
        self.failure: Exception | None = None

    def __call__(self, config: CredentialConfig, material: object) -> ClientCredentials:
        assert isinstance(material, Secret)
        if self.failure is not None:
            raise self.failure
        self.built.append(material)
        return ClientCredentials(config.issuer, client_id=config.client_id, client_secret=material)


def make_credential(tmp_path: Path) -> tuple[ManagedCredential, Path, Factory]:
    secret = tmp_path / "secret"
    secret.write_text("one\n")
    config = CredentialConfig(
        name="billing",
        client_id="billing",
        issuer="https://as.example",
        client_secret_file=secret,
        audience="https://api.example",
        scope=("read", "write"),
    )
    factory = Factory()
    return ManagedCredential(config, factory), secret, factory


def test_rotation_rebuilds_the_source_only_when_the_secret_changes(tmp_path):
    cred, secret, factory = make_credential(tmp_path)
    first = cred.source
    assert cred.poll() is False
    os.utime(secret, ns=(1, 1))  # touched, same content
    assert cred.poll() is False and cred.source is first
    secret.write_text("two\n")
    os.utime(secret, ns=(2, 2))
    assert cred.poll() is True and cred.source is not first and cred.reloads == 1
    assert [s.reveal() for s in factory.built] == ["one", "two"]


def test_symlink_swapped_secret_mount_is_detected(tmp_path):
    # Kubernetes: secret -> ..data/secret, and ..data -> ..<timestamp> swapped atomically.
    first = tmp_path / "..2024_01"
    first.mkdir()
    (first / "secret").write_text("one")
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / "secret").symlink_to("..data/secret")
    config = CredentialConfig(
        name="b", client_id="b", issuer="https://as.example", client_secret_file=tmp_path / "secret"
    )
    cred = ManagedCredential(config, Factory())
    second = tmp_path / "..2024_02"
    second.mkdir()
    (second / "secret").write_text("two")
    (tmp_path / "..data_tmp").symlink_to(second.name)
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert cred.poll() is True


def test_unreadable_rotation_keeps_the_current_credential(tmp_path, caplog):
    cred, secret, _ = make_credential(tmp_path)
    first = cred.source
    secret.unlink()
    assert cred.poll() is False and cred.source is first
    assert "one" not in caplog.text
    assert file_stamp(secret) is None
    secret.write_text("two")
    assert cred.poll() is True


@pytest.mark.parametrize(
    ("audience", "scope", "expected"),
    [
        ("https://api.example", None, ("https://api.example", frozenset({"read", "write"}))),
        ("https://api.example", "read", ("https://api.example", frozenset({"read"}))),
        (None, "write read", ("https://api.example", frozenset({"read", "write"}))),
        ("https://api.example", "admin", None),
        ("https://other.example", None, None),
    ],
)
def test_local_callers_may_ask_for_less_scope_never_more(tmp_path, audience, scope, expected):
    cred, _, _ = make_credential(tmp_path)
    assert cred.match(audience, scope) == expected


def test_a_rotation_that_cannot_be_built_keeps_the_current_credential(tmp_path):
    cred, secret, factory = make_credential(tmp_path)
    first = cred.source
    factory.failure = OSError(2, "No such file or directory")  # e.g. its ca_file vanished
    secret.write_text("two\n")
    os.utime(secret, ns=(5, 5))
    assert cred.poll() is False and cred.source is first and cred.reloads == 0


def test_kept_keys_are_bounded_and_start_with_the_configured_one(tmp_path):
    cred, _, _ = make_credential(tmp_path)
    assert list(cred.keys) == [cred.configured_key]
    for i in range(100):
        cred.remember(("https://api.example", frozenset({f"s{i}"})))
    cred.remember(cred.configured_key)
    assert len(cred.keys) == 32 and next(iter(cred.keys)) == cred.configured_key
