"""Helpers for the packaging tests: real wheels, fresh virtual environments, the package index.

Installing into a clean venv needs the package index (or pip's cache) for cryptography, httpx
and, for the server extra, its packages. When the index cannot be reached the tests skip and
say so; any other pip failure fails the test.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_UNREACHABLE = ("No matching distribution found", "Could not find a version", "NewConnectionError",
                "Temporary failure in name resolution", "Network is unreachable", "Max retries exceeded",
                "ConnectTimeoutError", "ReadTimeoutError")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without our WARDEN_* settings or this venv, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WARDEN_", "VIRTUAL_ENV", "PYTHONPATH", "PROMETHEUS_"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(REPO / ".venv")))
    env.update(extra)
    return env


def run_installer(cmd: list[str], *, timeout: float = 300, env: dict[str, str] | None = None,
                  ) -> subprocess.CompletedProcess[str]:
    """Run a command that installs from the package index; skip when the index is unreachable."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          env=env or clean_env())
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        if any(symptom in output for symptom in _UNREACHABLE):
            pytest.skip(f"package index unreachable: {output.strip().splitlines()[-1]}")
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output}")
    return proc
