"""The round trip an operator runs: a real Prometheus (Debian's package; free port, its own data
directory, scrape and rule evaluation every second) scrapes a real `warden serve --workers 2`, a
resource server built on warden.resource and a workload built on warden.client
(bench/observe_app.py) under a short load, with deploy/prometheus's rules loaded; then every
dashboard panel's query must return data and every rule must evaluate cleanly.

Metrics of the contract that the code does not declare yet are reported (xfail) instead of
failing, so this test tightens by itself as they land.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from bench._observe import Cluster, prometheus_binary, token_traffic
from tests.deploy.conftest import DEPLOY
from tests.deploy.promql import base_name, metric_names, pending_metrics, underlying_metrics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if prometheus_binary() is None:
        pytest.skip("prometheus is not installed (Debian package prometheus; .ci/run installs it)")
    c = Cluster(tmp_path_factory.mktemp("observed"), workers=2)
    try:
        c.start_warden()
        c.setup_clients()
        batch_id = c.clients["batch"][0]
        c.cli("clients", "secrets", "rotate", batch_id, "--grace", "1h")  # traffic keeps using the old one
        c.start_apps(rate=15)
        c.start_prometheus()
        seen = token_traffic(c, 20, rate=20)
        # Key and secret ages are set by the servers' maintenance, every 30 s: keep the load up until then.
        deadline = time.monotonic() + 45
        while not c.query("warden_signing_key_age_seconds") and time.monotonic() < deadline:
            for code, count in token_traffic(c, 2, rate=20).items():
                seen[code] = seen.get(code, 0) + count
        assert {"200", "401", "429"} <= set(seen), seen
        time.sleep(3)  # a few more scrapes and rule evaluations
        yield c
    finally:
        c.stop()


def panels() -> Iterator[tuple[str, str, str]]:
    for path in sorted((DEPLOY / "grafana").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                yield path.stem, panel["title"], target["expr"]


def test_every_target_is_scraped(cluster: Cluster):
    up = {r["metric"]["job"]: r["value"][1] for r in cluster.query("up")}
    assert up == {"warden": "1", "orders-api": "1", "orders-worker": "1"}


def test_every_rule_evaluates_without_error(cluster: Cluster):
    import httpx

    groups = httpx.get(f"{cluster.prom}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert {g["name"] for g in groups} >= {"warden-sli", "warden-slo-alerts", "warden-ticket-alerts"}
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))


def test_every_panel_query_returns_data(cluster: Cluster):
    pending = pending_metrics()
    empty: list[str] = []
    waiting: set[str] = set()
    for board, title, expr in panels():
        needs = underlying_metrics(metric_names(expr)) & pending
        result = cluster.query(expr)  # a malformed query raises here, pending or not
        if needs:
            waiting.update(needs)
        elif not result:
            empty.append(f"{board} / {title}: {expr}")
    assert empty == [], "panels without data:\n" + "\n".join(empty)
    if waiting:
        pytest.xfail(f"{len(waiting)} contract metrics not exported yet: {', '.join(sorted(waiting))}")


def test_no_page_fires_under_healthy_load(cluster: Cluster):
    firing = [a["labels"]["alertname"] for a in cluster.alerts()
              if a["state"] == "firing" and a["labels"].get("severity") == "page"]
    assert firing == []


def test_the_server_exports_what_the_dashboards_need(cluster: Cluster):
    """Every contract metric the code declares is really exposed (after the load above)."""
    from tests.deploy.promql import CONTRACT

    exposed = {base_name(n) for n in cluster.scraped_names()}
    declared = CONTRACT - pending_metrics()
    # Series that need an event the short load does not cause (a grace period, an overdue key) may be absent.
    event_only = {"warden_client_secret_grace_remaining_seconds", "warden_resource_jwks_fetches_total"}
    assert declared - exposed - event_only == set()
