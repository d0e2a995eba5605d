"""deploy/grafana: the three dashboards are the generator's current output, name only metrics
Warden exports (or the recording rules define), and the runbooks point at panels that exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

from tests.deploy.conftest import DEPLOY, REPO
from tests.deploy.promql import CONTRACT, base_name, metric_names, recorded_names

GRAFANA = DEPLOY / "grafana"
NAMES = {"executive": "Executive", "oncall": "On-call", "debug": "Debug"}


def dashboards() -> dict[str, dict[str, Any]]:
    return {name: json.loads((GRAFANA / f"{name}.json").read_text()) for name in NAMES}


def test_the_committed_dashboards_are_the_generators_output():
    proc = subprocess.run([sys.executable, str(GRAFANA / "generate.py"), "--check"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def test_there_are_an_executive_an_on_call_and_a_debug_dashboard():
    boards = dashboards()
    assert len({b["uid"] for b in boards.values()}) == 3
    for board in boards.values():
        titles = [p["title"] for p in board["panels"]]
        assert titles and len(titles) == len(set(titles))
        for panel in board["panels"]:
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])
            assert panel["datasource"]["uid"] == "${datasource}"


def test_every_query_names_only_metrics_warden_exports():
    known = CONTRACT | recorded_names()
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel["targets"]:
                unknown = {m for m in metric_names(target["expr"]) if base_name(m) not in known}
                assert unknown == set(), f"{name} / {panel['title']}: {unknown}"


def test_the_dashboards_cover_every_indicator_of_the_guide():
    exprs = " ".join(t["expr"] for b in dashboards().values() for p in b["panels"] for t in p["targets"])
    for indicator in ("warden:token_issuance:success_ratio_rate1m", "warden:token_request_duration_seconds:p95",
                      "warden:resource_validation_seconds:p95", "warden:auth_failures", "warden:client_token_cache",
                      "warden:client_secret_rotation_lag_seconds", "warden:tokens_revoked", "warden:token_requests:rate",
                      "warden:resource_validations:invalid", "warden:token_requests:peak_rate1m_1h",
                      "warden:client_requests:rate5m"):
        assert indicator in exprs, indicator


def test_runbooks_point_at_panels_that_exist():
    titles = {NAMES[n]: {p["title"] for p in b["panels"]} for n, b in dashboards().items()}
    refs = 0
    for page in sorted((REPO / "docs" / "runbooks").glob("*.md")):
        text = " ".join(page.read_text().split())
        for board, panel in re.findall("\\*(Executive|On-call|Debug)\\* \u203a \\*\\*(.+?)\\*\\*", text):
            refs += 1
            assert panel in titles[board], f"{page.name}: {board} / {panel}"
    assert refs > 20
