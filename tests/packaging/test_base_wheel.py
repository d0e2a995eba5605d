"""The wheel, installed with no extras into a fresh venv, is honest about what it can do.

`warden --version`, `warden token`, `warden verify` and `warden agent` work (usage or a clean
one-line error, never an ImportError); `warden serve` and the store commands refuse in one line
naming the server extra, exit 2.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from tests.packaging.conftest import REPO, clean_env, run_installer

from warden import __version__
from warden.cli.extras import DISTRIBUTION

pytestmark = pytest.mark.slow


def test_the_distribution_name_is_the_one_the_cli_names():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION != "warden"  # `warden` on the index is another project
    readme = (REPO / "README.md").read_text()
    assert f"pip install {DISTRIBUTION}" in readme and f"pip install '{DISTRIBUTION}[server]'" in readme
    assert "pip install warden\n" not in readme and "pip install 'warden[" not in readme


@pytest.fixture(scope="module")
def base_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    wheels = root / "wheels"
    # the build backend (setuptools) comes from the package index too
    run_installer([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels),
                   str(REPO)])
    (wheel,) = wheels.glob("*.whl")
    assert wheel.name.startswith(f"{DISTRIBUTION.replace('-', '_')}-{__version__}-")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "warden/py.typed" in names and not any(n.startswith(("tests/", "deploy/", "docs/")) for n in names)
    assert any(n.endswith(("licenses/LICENSE", "/LICENSE")) for n in names), names
    venv = root / "venv"
    # a clean venv (no system site packages); this venv's pip installs into it, saving ensurepip's time
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    run_installer([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                   "--disable-pip-version-check", str(wheel)])
    return venv


def warden(venv: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "warden"), *args], capture_output=True, text=True, timeout=60,
                          check=False, env=clean_env(**env), cwd=venv)


def test_base_install_has_no_server_dependencies(base_install: Path):
    code = ("import importlib.util as u; print([m for m in ('sqlalchemy', 'alembic', 'httptools', "
            "'uvloop', 'psycopg', 'prometheus_client', 'uvicorn') if u.find_spec(m)])")
    proc = subprocess.run([str(base_install / "bin" / "python"), "-c", code],
                          capture_output=True, text=True, check=True, timeout=60)
    assert proc.stdout.strip() == "[]"


def test_version(base_install: Path):
    proc = warden(base_install, "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"warden {__version__}"


@pytest.mark.parametrize("argv,code,expect", [
    (["token", "--help"], 0, "--client-id"),
    (["token", "--issuer", "http://127.0.0.1:9", "--client-id", "c"], 2, "set WARDEN_CLIENT_SECRET"),
    (["verify", "--help"], 0, "--audience"),
    (["verify", "not.a.token", "--issuer", "http://127.0.0.1:9", "--audience", "https://api.example"], 1,
     "invalid token"),
    (["agent", "--help"], 0, "--config"),
    (["agent", "--config", "missing-agent.toml"], 2, "cannot read agent config"),
])
def test_light_commands_work_on_the_base_install(base_install: Path, argv: list[str], code: int, expect: str):
    proc = warden(base_install, *argv)
    assert proc.returncode == code, proc.stderr
    assert expect in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "server extra" not in proc.stderr


def test_token_fetch_reports_an_unreachable_server_in_one_line(base_install: Path):
    proc = warden(base_install, "token", "--issuer", "http://127.0.0.1:9", "--client-id", "c",
                  WARDEN_CLIENT_SECRET="not-a-real-secret")
    assert proc.returncode == 4 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr  # unavailable


@pytest.mark.parametrize("argv", [["serve"], ["init"], ["apis", "list"], ["clients", "create", "billing"],
                                  ["keys", "list"], ["apply", "state.toml"]])
def test_server_commands_refuse_in_one_line(base_install: Path, argv: list[str]):
    proc = warden(base_install, *argv)
    command = "warden " + " ".join(a for a in argv if a not in ("billing", "state.toml"))
    assert proc.returncode == 2
    assert proc.stderr == f"warden: error: {command} needs the server extra: pip install '{DISTRIBUTION}[server]'\n"
    assert not (base_install / "warden-data").exists()
