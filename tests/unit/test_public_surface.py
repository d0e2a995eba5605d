"""The libraries import without the server's dependencies, and public names are deliberate."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

BLOCKER = """
import sys
class Block:
    blocked = ("uvicorn", "sqlalchemy", "alembic", "psycopg", "prometheus_client", "starlette", "fastapi")
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ImportError(f"{name} is a server-only dependency")
        return None
sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize("module", ["warden.client", "warden.resource", "warden.jose", "warden.protocol.errors",
                                    "warden.agent", "warden.cli.main"])
def test_light_modules_import_without_server_dependencies(module: str):
    code = BLOCKER + f"import {module}\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("module", ["warden.jose", "warden.errors", "warden.protocol.errors", "warden.settings",
                                    "warden.client", "warden.resource"])
def test_all_lists_only_existing_public_names(module: str):
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__")
    assert names and len(names) == len(set(names))
    for name in names:
        assert not name.startswith("_") and hasattr(mod, name), name
