"""Failure reasons (audit `reason` fields, metric labels) form one closed set: `warden.protocol.reasons`.

mypy refuses a literal outside `Reason` where an error is raised; this test also reads every reason
written in `src/` (keyword `reason=...`, and the `reason` argument of the small `_fail`/`_invalid`
helpers) so a reason passed some other way cannot drift either. The client library's `reason`s
(`warden.client` errors: network_error, issuer_mismatch...) are its own set and not scanned."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import warden
from warden.protocol import errors
from warden.protocol.reasons import REASONS

SRC = Path(warden.__file__).parent


def _constants(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _constants(node.body) + _constants(node.orelse)
    return []


def _reasons_written() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).parts[0] == "client":
            continue  # the client library's errors carry the client's own reasons, not the server's
        tree = ast.parse(path.read_text())
        helpers = {fn.name for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
                   and [a.arg for a in fn.args.args][-1:] == ["reason"]}
        for node in ast.walk(tree):
            values: list[str] = []
            if isinstance(node, ast.Call):
                values += [v for kw in node.keywords if kw.arg == "reason" for v in _constants(kw.value)]
                if isinstance(node.func, ast.Name) and node.func.id in helpers and len(node.args) >= 2:
                    values += _constants(node.args[-1])
            elif (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None
                  and isinstance(node.annotation, ast.Name) and node.annotation.id in ("Reason", "Final")
                  and (node.target.id == "reason" or node.target.id.isupper())):
                values += _constants(node.value)
            for value in values:
                found.setdefault(value, f"{path.relative_to(SRC)}:{getattr(node, 'lineno', 0)}")
    return found


def test_every_reason_written_in_the_source_is_a_member_of_the_closed_set():
    written = _reasons_written()
    assert len(written) > 100  # the scan sees the raises (guards against a scan that finds nothing)
    assert {reason: where for reason, where in written.items() if reason not in REASONS} == {}


def test_an_error_raised_without_a_reason_reports_a_member():
    codes = {cls.error for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, errors.OAuthError)}
    assert codes <= REASONS
