"""The docs site: its generated references match the code, and `mkdocs build --strict` passes,
with or without docs/runbooks/ (which other work adds), and fails on a broken link."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from warden.cli.main import build_parser
from warden.server.admin_openapi import OPENAPI
from warden.settings import environment_names, is_secret_field

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("warden_docs_gen_test", DOCS / "gen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_pages_are_up_to_date():
    proc = subprocess.run([sys.executable, str(DOCS / "gen.py"), "--check"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr + " (run: python docs/gen.py)"


def test_the_check_notices_a_stale_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    module = gen()
    shutil.copy(DOCS / "threats.toml", tmp_path / "threats.toml")
    for name in module.PAGES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(module.PAGES[name]())
    monkeypatch.setattr(module, "DOCS", tmp_path)
    assert module.main(["--check"]) == 0
    page = tmp_path / "reference" / "configuration.md"
    page.write_text(page.read_text().replace("WARDEN_SERVER_PORT", "WARDEN_SERVER_PROT"))
    assert module.main(["--check"]) == 1


def test_configuration_reference_names_every_setting_and_variable():
    text = (DOCS / "reference" / "configuration.md").read_text()
    for variable, path in environment_names().items():
        assert f"`{variable}`" in text and f"`{path[-1]}`" in text, variable
    assert "`WARDEN_KEYS_ENCRYPTION_KEY_FILE`" in text and "`WARDEN_DATABASE_URL_FILE`" in text
    assert "[[trusted_issuers]]" in text
    assert not is_secret_field(int)


def commands(parser, path=()):  # type: ignore[no-untyped-def]
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs and path:
        yield " ".join(path)
    for action in subs:
        for name, sub in action.choices.items():
            yield from commands(sub, (*path, name))


def test_cli_reference_has_every_command():
    text = (DOCS / "reference" / "cli.md").read_text()
    names = list(commands(build_parser()))
    assert {"serve", "init", "token", "verify", "agent", "clients secrets rotate"} <= set(names)
    for name in names:
        assert f"## `warden {name}`" in text, name


def test_admin_api_reference_has_every_operation():
    text = (DOCS / "reference" / "admin-api.md").read_text()
    for path, ops in OPENAPI("https://auth.example.com")["paths"].items():
        for method in ops:
            assert f"| {method.upper()} | `/admin/v1{path}` |" in text


def test_every_threat_and_fault_id_cited_in_the_code_has_a_row():
    module = gen()
    catalogue = module.load_catalogue()
    assert set(catalogue) == {f"T{n:02d}" for n in range(1, 75)} | {f"F{n:02d}" for n in range(1, 22)}
    cited = set(module.cited_ids(REPO / "src")) | set(module.cited_ids(REPO / "tests"))
    assert cited and cited <= set(catalogue), sorted(cited - set(catalogue))
    page = (DOCS / "threats.md").read_text()
    for ident in catalogue:
        assert f'<span id="{ident.lower()}">{ident}</span>' in page


def test_citations_name_test_functions_and_expand_ranges():
    module = gen()
    assert module._ids_in("rows T01-T03 and F12") == {"T01", "T02", "T03", "F12"}
    places = module.cited_ids(REPO / "tests")
    assert "tests/unit/protocol/test_mtls_certificates.py::test_chain_must_reach_the_configured_ca" in places["T19"]


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mkdocs", reason="mkdocs is in the docs extra: pip install -e '.[docs]'")
    pytest.importorskip("material", reason="mkdocs-material is in the docs extra")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                           "-d", str(site)], capture_output=True, text=True, timeout=300, check=False, env=env,
                          cwd=config.parent)


def test_strict_build_passes(tmp_path: Path):
    proc = mkdocs_build(REPO / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ("index.html", "reference/configuration/index.html", "reference/cli/index.html",
                 "reference/admin-api/index.html", "threats/index.html", "deployment/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    # the site's threat table lists the tests citing each id as the tree is now
    assert "test_chain_must_reach_the_configured_ca" in (tmp_path / "site" / "threats" / "index.html").read_text()


@pytest.fixture
def copy_of_the_site_source(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(DOCS, root / "docs", ignore=shutil.ignore_patterns("runbooks", "__pycache__"))
    shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
    shutil.copy(REPO / "CHANGELOG.md", root / "CHANGELOG.md")
    return root


def test_strict_build_passes_with_runbooks_and_lists_them(copy_of_the_site_source: Path):
    root = copy_of_the_site_source
    (root / "docs" / "runbooks").mkdir()
    (root / "docs" / "runbooks" / "index.md").write_text("# Runbooks\n\n- [Server down](server-down.md)\n")
    (root / "docs" / "runbooks" / "server-down.md").write_text("# Server down\n\nSee [operations](../operations.md).\n")
    proc = mkdocs_build(root / "mkdocs.yml", root / "site")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    home = (root / "site" / "index.html").read_text()
    assert 'href="runbooks/server-down/"' in home  # in the navigation, not just built


def test_strict_build_fails_on_a_broken_link(copy_of_the_site_source: Path):
    root = copy_of_the_site_source
    page = root / "docs" / "operations.md"
    page.write_text(page.read_text() + "\nSee [the missing page](missing.md).\n")
    proc = mkdocs_build(root / "mkdocs.yml", root / "site")
    assert proc.returncode != 0 and "missing.md" in proc.stdout + proc.stderr
