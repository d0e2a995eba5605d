"""MkDocs hooks (mkdocs.yml `hooks:`).

- The navigation lists docs/runbooks/ when that folder exists, index first, so runbooks can be
  added without touching mkdocs.yml and the strict build passes with or without them.
- threats.md is rendered afresh from docs/threats.toml and the current tree, so the site's
  "cited by" column always names the tests as they are.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

_DOCS = Path(__file__).resolve().parent


def _gen() -> Any:
    spec = importlib.util.spec_from_file_location("warden_docs_gen", _DOCS / "gen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_config(config: Any, **_: Any) -> Any:
    runbooks = Path(config["docs_dir"]) / "runbooks"
    pages = sorted(p.name for p in runbooks.glob("*.md")) if runbooks.is_dir() else []
    if pages and config["nav"] is not None:
        first = [p for p in pages if p in ("index.md", "README.md")]
        ordered = first + [p for p in pages if p not in first]
        config["nav"].append({"Runbooks": [f"runbooks/{p}" for p in ordered]})
    return config


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri == "threats.md" and Path(page.file.abs_src_path).parent == _DOCS:
        return str(_gen().render_threats())
    return markdown
