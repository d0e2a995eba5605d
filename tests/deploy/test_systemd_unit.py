"""deploy/systemd: the unit and its PostgreSQL drop-in pass `systemd-analyze verify` without a
single warning, keep their hardening, and hand Warden settings it accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.deploy.conftest import DEPLOY

from warden.settings import load_settings

SYSTEMD = DEPLOY / "systemd"
UNIT = SYSTEMD / "warden.service"
DROP_IN = SYSTEMD / "warden.service.d" / "postgresql.conf"
EXEC = "/opt/warden/bin/warden"


def directives(*paths: Path) -> list[tuple[str, str]]:
    out = []
    for path in paths:
        for line in path.read_text().splitlines():
            if line and not line.startswith(("#", ";", "[")) and "=" in line:
                key, _, value = line.partition("=")
                out.append((key.strip(), value.strip()))
    return out


def analyze() -> str:
    tool = shutil.which("systemd-analyze") or ("/usr/bin/systemd-analyze"
                                               if Path("/usr/bin/systemd-analyze").exists() else None)
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return tool


@pytest.fixture
def unit_dir(tmp_path: Path) -> Path:
    """The unit and drop-in, with ExecStart pointing at this environment's `warden` (verify checks it exists)."""
    warden = Path(sys.executable).parent / "warden"
    assert warden.exists()
    (tmp_path / "warden.service.d").mkdir()
    (tmp_path / "warden.service").write_text(UNIT.read_text().replace(EXEC, str(warden)))
    shutil.copy(DROP_IN, tmp_path / "warden.service.d" / DROP_IN.name)
    return tmp_path


def test_unit_and_drop_in_verify_cleanly(unit_dir: Path):
    proc = subprocess.run([analyze(), "verify", str(unit_dir / "warden.service")], capture_output=True,
                          text=True, timeout=60, check=False)
    # verify exits 0 on unknown keys and unparsable values; it only prints them, so any output fails
    assert proc.returncode == 0 and proc.stderr.strip() == "" and proc.stdout.strip() == "", proc.stderr


def test_verify_would_catch_a_mistyped_directive(unit_dir: Path):
    """The check above can fail: a typo in the drop-in is reported."""
    drop_in = unit_dir / "warden.service.d" / DROP_IN.name
    drop_in.write_text(drop_in.read_text().replace("LoadCredential=", "LoadCredentail="))
    proc = subprocess.run([analyze(), "verify", str(unit_dir / "warden.service")], capture_output=True,
                          text=True, timeout=60, check=False)
    assert "LoadCredentail" in proc.stderr


def test_offline_security_exposure_is_low(unit_dir: Path):
    proc = subprocess.run([analyze(), "security", "--offline=yes", str(unit_dir / "warden.service")],
                          capture_output=True, text=True, timeout=60, check=False)
    if "--offline" in proc.stderr and proc.returncode != 0:
        pytest.skip(f"this systemd-analyze has no offline security check: {proc.stderr.strip()}")
    found = re.search(r"Overall exposure level for warden\.service: ([0-9.]+)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    assert float(found.group(1)) <= 2.0  # systemd rates up to 3.9 "OK"; 10 is unsandboxed


def test_hardening_and_dedicated_user():
    found = dict(directives(UNIT))
    assert found["User"] == "warden" == found["Group"]
    assert found["ProtectSystem"] == "strict" and found["NoNewPrivileges"] == "yes"
    assert found["StateDirectory"] == "warden" and found["CapabilityBoundingSet"] == ""
    assert found["ExecStart"] == f"{EXEC} serve"
    sysusers = (SYSTEMD / "warden.sysusers").read_text().splitlines()
    assert any(line.split()[:2] == ["u", "warden"] and "/var/lib/warden" in line for line in sysusers)


def test_credentials_reach_warden_as_setting_files(tmp_path: Path):
    """Every LoadCredential is read through a WARDEN_*_FILE=%d/<name> setting, and the result loads."""
    pairs = directives(UNIT, DROP_IN)
    credentials = {value.split(":")[0] for key, value in pairs if key == "LoadCredential"}
    env = dict(value.split("=", 1) for key, value in pairs if key == "Environment")
    referenced = {v.removeprefix("%d/") for k, v in env.items() if v.startswith("%d/")}
    assert credentials == referenced == {"encryption-key", "database-url"}
    assert all(k.endswith("_FILE") for k, v in env.items() if v.startswith("%d/"))
    (tmp_path / "encryption-key").write_text("A" * 43 + "\n")
    (tmp_path / "database-url").write_text("postgresql://warden:pw@db.example:5432/warden\n")
    env = {k: v.replace("%d", str(tmp_path)) for k, v in env.items()}
    assert env.pop("WARDEN_CONFIG") == "/etc/warden/warden.toml"
    settings = load_settings(str(DEPLOY / "kubernetes" / "warden.toml"), env)  # the sample settings file
    assert settings.data_dir == "/var/lib/warden" and settings.keys.encryption_key is not None
    assert settings.database_url is not None
