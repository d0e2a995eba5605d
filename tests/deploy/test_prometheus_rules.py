"""deploy/prometheus: the recording rules and alerts pass `promtool check rules`, their unit tests
(`*.test.yml`) pass `promtool test rules`, every alert is exercised firing and not firing, carries a
severity and a runbook that exists, and every expression names only metrics Warden exports.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.deploy.conftest import DEPLOY, REPO, load_yaml_documents
from tests.deploy.promql import CONTRACT, base_name, metric_names, recorded_names

RULES_DIR = DEPLOY / "prometheus"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
TEST_FILES = sorted(RULES_DIR.glob("*.test.yml"))


def promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    return tool


def rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for doc in load_yaml_documents(path) for group in doc["groups"]
            for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def test_there_are_rule_files_and_tests_beside_them():
    assert RULE_FILES and TEST_FILES
    for path in TEST_FILES:
        (doc,) = load_yaml_documents(path)
        assert all((RULES_DIR / f).resolve() in {p.resolve() for p in RULE_FILES} for f in doc["rule_files"])


def test_promtool_accepts_the_rules():
    proc = subprocess.run([promtool(), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_pass():
    proc = subprocess.run([promtool(), "test", "rules", *(p.name for p in TEST_FILES)], cwd=RULES_DIR,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_catch_a_wrong_expectation(tmp_path: Path):
    """The unit tests really compare: flip one expectation and promtool fails."""
    text = (RULES_DIR / "warden.test.yml").read_text()
    broken = text.replace("exp_alerts: []", "exp_alerts: [{exp_labels: {severity: page}}]", 1)
    assert broken != text
    for path in RULE_FILES:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "warden.test.yml").write_text(broken)
    proc = subprocess.run([promtool(), "test", "rules", "warden.test.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode != 0


def test_every_alert_is_tested_firing_and_not_firing():
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        (doc,) = load_yaml_documents(path)
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(alerts()) - fired == set(), "alerts never tested firing"
    assert set(alerts()) - quiet == set(), "alerts never tested staying quiet"
    assert (fired | quiet) <= set(alerts()), "tests name alerts that do not exist"


def test_every_alert_has_a_severity_and_a_runbook_that_exists():
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/runbooks/") and url.endswith(".md"), name
        assert (REPO / url).is_file(), f"{name}: {url} does not exist"
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_paging_alerts_are_the_ones_the_guide_asks_for():
    pages = {name for name, rule in alerts().items() if rule["labels"]["severity"] == "page"}
    assert pages == {"WardenIssuanceErrorBudgetFastBurn", "WardenIssuanceSuccessLow", "WardenServiceDown"}
    assert alerts()["WardenIssuanceSuccessLow"]["for"] == "1m"


def test_burn_rate_windows_follow_the_sre_workbook():
    text = "\n".join(rule["expr"] for rule in alerts().values())
    for long_window, short_window, factor in (("1h", "5m", "14.4"), ("6h", "30m", "6"), ("1d", "2h", "3"),
                                              ("3d", "6h", "1")):
        assert (f"warden:token_errors:ratio_rate{long_window} > ({factor} * 0.0005) and "
                f"warden:token_errors:ratio_rate{short_window} > ({factor} * 0.0005)") in " ".join(text.split())


def test_rules_name_only_metrics_warden_exports():
    known = CONTRACT | recorded_names()
    for rule in rules():
        unknown = {n for n in metric_names(rule["expr"]) if base_name(n) not in known}
        assert unknown == set(), f"{rule.get('record') or rule.get('alert')}: {unknown}"


def test_metric_name_extraction():
    expr = ('histogram_quantile(0.95, sum by (job, le) (rate(warden_token_request_duration_seconds_bucket'
            '{outcome="issued", job=~"$job"}[5m]))) > 0.2 and on (job) up{job="warden"} == 0 '
            'or absent(up) unless max_over_time(warden:token_requests:rate1m[1h] offset 1d) > 3 * 0.0005')
    assert metric_names(expr) == {"warden_token_request_duration_seconds_bucket", "up",
                                  "warden:token_requests:rate1m"}


def test_the_alertmanager_example_routes_every_severity():
    import yaml

    text = (RULES_DIR / "README.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = yaml.safe_load(block)
    routed = {m.split("=", 1)[1].strip('"') for r in config["route"]["routes"] for m in r["matchers"]}
    assert {rule["labels"]["severity"] for rule in alerts().values()} <= routed
    inhibitors = {m.split("=", 1)[1].strip('"') for r in config["inhibit_rules"] for m in r["source_matchers"]}
    assert inhibitors <= set(alerts())
    assert "client" in config["route"]["group_by"] and "WardenClientRequestSurge" in alerts()  # the per-client alert
