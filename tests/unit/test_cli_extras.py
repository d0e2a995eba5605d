"""Without the server extra, server-side commands refuse in one line (exit 2); the light ones still work.

The packages are hidden from a subprocess by an import hook, as if they were not installed; the
wheel test in tests/packaging/ checks the same against a real base install in a fresh venv.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from warden.cli.extras import DISTRIBUTION, SERVER_MODULES

HIDE = """
import importlib.machinery, sys
class Hide:
    hidden = {hidden!r}
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.hidden:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Hide())
from warden.cli.main import main
raise SystemExit(main({argv!r}))
"""


def run(argv: list[str], hidden: tuple[str, ...] = SERVER_MODULES) -> subprocess.CompletedProcess[str]:
    code = HIDE.format(hidden=tuple(hidden), argv=argv)
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argv", [["serve"], ["init"], ["apis", "list"], ["clients", "secrets", "list", "c1"],
                                  ["keys", "rotate"], ["tokens", "revoke", "--jti", "j"], ["apply", "x.toml"]])
def test_server_commands_say_they_need_the_extra(argv: list[str], tmp_path):
    proc = run([*argv, "--data-dir", str(tmp_path / "d")])
    command = "warden " + " ".join(a for a in argv if a not in ("c1", "--jti", "j", "x.toml"))
    assert proc.returncode == 2
    assert proc.stderr == (f"warden: error: {command} needs the server extra: "
                           f"pip install '{DISTRIBUTION}[server]'\n")
    assert not (tmp_path / "d").exists()  # refused before touching anything


def test_a_partial_install_is_reported_the_same_way(tmp_path):
    """psycopg is only imported with a PostgreSQL URL, after the up-front check."""
    proc = run(["apis", "list", "--database-url", "postgresql://u@127.0.0.1:1/x"], hidden=("psycopg",))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("warden: error: warden apis list needs the server extra") and "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv,expect", [
    (["token", "--issuer", "http://127.0.0.1:1", "--client-id", "c"], "set WARDEN_CLIENT_SECRET"),
    (["verify", "not-a-token", "--issuer", "http://127.0.0.1:1", "--audience", "a"], "invalid token"),
    (["agent", "--config", "/nonexistent/agent.toml"], "agent"),
])
def test_light_commands_work_without_the_extra(argv: list[str], expect: str):
    proc = run(argv)
    assert "server extra" not in proc.stderr and "Traceback" not in proc.stderr
    assert expect in proc.stderr and proc.returncode in (1, 2)


def test_remote_mode_needs_no_server_extra(tmp_path, monkeypatch):
    """`--server` sends the command to the admin API: only the base install is needed to get that far
    (here to an unreachable server, which is reported in one line, not as a missing extra)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("WARDEN_CLIENT_ID", "ops")
    monkeypatch.setenv("WARDEN_CLIENT_SECRET", "wsec_" + "x" * 42)
    proc = run(["apis", "list", "--server", f"http://127.0.0.1:{port}"],
               hidden=(*SERVER_MODULES, "psycopg", "redis", "uvloop"))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"warden: error: cannot get an admin token from http://127.0.0.1:{port}")
    assert DISTRIBUTION not in proc.stderr
    local = run(["apis", "list", "--data-dir", str(tmp_path / "d")])
    assert local.returncode == 2  # local mode still says it needs the extra
