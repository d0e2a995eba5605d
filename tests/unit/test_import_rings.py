"""The import rings of DESIGN/STYLE hold: dependencies point inward, siblings stay apart, no cycles.

Read from the source with `ast`, so the test sees every import, lazy ones inside functions too (the CLI
imports heavy modules inside the command that needs them; that is still a dependency).

Rings, innermost first (a package may import its own modules and anything of an inner ring):

0. the base: `warden` itself (`__version__` only), `warden.errors`, `warden.secret`, `warden._toml`,
   `warden.asgi_types`, `warden._drive`, `warden._http11`
1. the core, no I/O: `core`, `jose`, `protocol`
2. `settings`, `storage`, and the libraries `client` and `resource`
3. `services` (core + storage), and the sidecar `agent` (built on `client`)
4. `server`
5. `cli`

Within a ring, packages may not import each other, except inside the core where `jose` and
`protocol` build on `core` (and `protocol` on `jose`). The libraries never reach the server side.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator

import pytest

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "warden"

RING = {
    "errors": 0, "secret": 0, "_toml": 0, "asgi_types": 0, "_drive": 0, "_http11": 0,
    "core": 1, "jose": 1, "protocol": 1,
    "settings": 2, "storage": 2, "client": 2, "resource": 2,
    "services": 3, "agent": 3,
    "server": 4,
    "cli": 5, "__init__": 0,
}
# Inside a ring, the only imports between packages: the core builds up core -> jose -> protocol.
SAME_RING = {("secret", "errors"), ("_toml", "errors"), ("errors", "__init__"), ("jose", "core"), ("protocol", "core"), ("protocol", "jose")}
# (importer, imported) that remain upward; each is a known debt named in the issue that records it.
KNOWN = {
    # core.client_metadata checks a client's JWKS with the jose parser (a lazy import).
    ("warden.core.client_metadata", "warden.jose"),
}


def _module(path: pathlib.Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: pathlib.Path, *, top_level_only: bool) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes: list[ast.AST] = []
    if top_level_only:
        for statement in tree.body:
            # `if TYPE_CHECKING:` blocks are for the type checker only
            if isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test):
                continue
            nodes.extend(ast.walk(statement) if isinstance(statement, (ast.If, ast.Try)) else [statement])
    else:
        nodes = list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("warden"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("warden"):
            yield node.module
            for alias in node.names:  # `from warden.server import endpoints` imports a module
                if (SRC.parent / (node.module.replace(".", "/") + "/" + alias.name + ".py")).exists():
                    yield f"{node.module}.{alias.name}"


FILES = sorted(SRC.rglob("*.py"))


def test_the_package_itself_imports_nothing() -> None:
    assert not list(_imports(SRC / "__init__.py", top_level_only=False))


def test_every_package_has_a_ring() -> None:
    packages = {_package(_module(f)) for f in FILES}
    assert packages <= set(RING), f"place new packages in RING: {sorted(packages - set(RING))}"


def test_no_import_points_outward_or_sideways() -> None:
    wrong = []
    for path in FILES:
        importer = _module(path)
        source = _package(importer)
        for imported in _imports(path, top_level_only=False):
            target = _package(imported)
            if target == source or (importer, imported) in KNOWN:
                continue
            if RING[target] > RING[source] or (RING[target] == RING[source] and (source, target) not in SAME_RING):
                wrong.append(f"{importer} -> {imported}")
    assert not wrong, "imports against the rings:\n" + "\n".join(sorted(set(wrong)))


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    known = {_module(f) for f in FILES}
    for path in FILES:
        graph[_module(path)] = {m for m in _imports(path, top_level_only=True) if m in known} - {_module(path)}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_rings_catch_an_upward_import(tmp_path: pathlib.Path) -> None:
    """The checks above can fail: an import of the server from the core is seen."""
    fake = tmp_path / "warden" / "core" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from warden.server.app import create_app\n")
    assert "warden.server.app" in set(_imports(fake, top_level_only=False))
    assert "warden.server.app" not in set(_imports(fake, top_level_only=True))
    assert RING[_package("warden.server.app")] > RING[_package("warden.core.bad")]
