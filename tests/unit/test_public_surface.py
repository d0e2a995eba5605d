"""The libraries import without the server's dependencies, and public names are deliberate.

The export guard works as httpx's `tests/test_exported_members.py` does: a package's `__all__`
is exactly its public names, and a module's `__all__` names every public class and function it
defines (and nothing it does not have). A new public name is then a decision, not an accident.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import pytest

import warden

SERVER_ONLY = ("uvicorn", "sqlalchemy", "alembic", "psycopg", "prometheus_client", "starlette", "fastapi",
               "httptools", "uvloop", "opentelemetry", "redis")

BLOCKER = f"""
import sys
class Block:
    blocked = {SERVER_ONLY!r}
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ImportError(f"{{name}} is a server-only dependency")
        return None
sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize("module", ["warden.client", "warden.resource", "warden.jose", "warden.protocol.errors",
                                    "warden.agent", "warden.cli.main", "warden.client.metrics",
                                    "warden.resource.metrics", "warden.core.tracing", "warden.services.audit",
                                    "warden._http11", "warden._drive"])
def test_light_modules_import_without_server_dependencies(module: str):
    code = BLOCKER + f"import {module}\n"
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def _modules() -> list[pkgutil.ModuleInfo]:
    return [info for info in pkgutil.walk_packages(warden.__path__, "warden.")
            if ".migrations" not in info.name]


def _public(mod: types.ModuleType) -> set[str]:
    return {name for name, value in vars(mod).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"}


def _defined_here(mod: types.ModuleType) -> set[str]:
    return {name for name, value in vars(mod).items()
            if not name.startswith("_") and isinstance(value, (type, types.FunctionType))
            and getattr(value, "__module__", None) == mod.__name__}


@pytest.mark.parametrize("info", [i for i in _modules() if i.ispkg], ids=lambda i: i.name)
def test_a_packages_all_is_exactly_its_public_names(info: pkgutil.ModuleInfo):
    mod = importlib.import_module(info.name)
    names = getattr(mod, "__all__", [])
    assert len(names) == len(set(names)), f"{info.name}.__all__ repeats a name"
    assert set(names) == _public(mod)


@pytest.mark.parametrize("info", [i for i in _modules() if not i.ispkg], ids=lambda i: i.name)
def test_a_modules_all_names_what_it_defines(info: pkgutil.ModuleInfo):
    mod = importlib.import_module(info.name)
    defined = _defined_here(mod)
    names = getattr(mod, "__all__", None)
    if names is None:
        assert not defined or info.name.rsplit(".", 1)[1].startswith("_"), \
            f"{info.name} defines public names {sorted(defined)} but has no __all__"
        return
    assert len(names) == len(set(names)), f"{info.name}.__all__ repeats a name"
    assert not [n for n in names if not hasattr(mod, n)], "__all__ names what the module does not have"
    assert defined <= set(names), f"public but not in __all__: {sorted(defined - set(names))}"
