"""Shared readers for the deployment recipes under deploy/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra: pip install -e '.[test]'")
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def containerfile_uid() -> int:
    for line in (REPO / "Containerfile").read_text().splitlines():
        if line.startswith("USER "):
            return int(line.split()[1].split(":")[0])
    raise AssertionError("Containerfile has no USER")
