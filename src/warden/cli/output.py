"""Printing for the CLI: JSON with --json, aligned text otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["emit", "table", "view_table"]


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    elif text is not None:
        sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))


def view_table(views: Sequence[Mapping[str, Any]], **columns: str) -> str:
    """A table of `views` (dictionaries), one column per keyword: the key it shows and its heading."""
    return table([[view[key] for key in columns] for view in views], tuple(columns.values()))


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [list(map(str, headers))] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in cells)
