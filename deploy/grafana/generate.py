"""Writes the three Grafana dashboards (executive, on-call, debug) as JSON beside this file.

    python deploy/grafana/generate.py           # rewrite the JSON files
    python deploy/grafana/generate.py --check   # exit 1 when a committed file differs

The panels are defined once here, so titles, units and queries stay consistent; the JSON is
committed so Grafana (file provisioning, or Dashboards > Import) needs nothing else.
Queries use the recording rules of deploy/prometheus/warden.rules.yml where one exists, so the
dashboards, the alerts and the runbooks show the same numbers. Every panel's query is checked by
tests/deploy/test_grafana_dashboards.py (names only exported metrics) and, against a real
Prometheus scraping a real Warden, by tests/deploy/test_observability_live.py (returns data).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent

BUDGET = 0.0005  # 99.95 % issuance SLO
ERRORS_30D = 'sum by (job) (increase(warden_token_requests_total{outcome="error"}[30d]))'
TOTAL_30D = "sum by (job) (increase(warden_token_requests_total[30d]))"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    description: str = ""
    thresholds: tuple[tuple[float, str], ...] = field(default_factory=tuple)


def q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


EXECUTIVE = (
    Panel("Issuance success (30 d, SLO 99.95 %)",
          (q(f"1 - (({ERRORS_30D}) or ({TOTAL_30D} * 0)) / {TOTAL_30D}", "{{job}}"),), "percentunit", "stat",
          "M1: share of token requests answered without a server-side failure over 30 days.",
          ((0, "red"), (0.9995, "green"))),
    Panel("Error budget remaining (30 d)",
          (q(f"1 - ((({ERRORS_30D}) or ({TOTAL_30D} * 0)) / {TOTAL_30D}) / {BUDGET}", "{{job}}"),),
          "percentunit", "stat", "Share of the 30-day error budget (0.05 % of requests) not yet spent.",
          ((0, "red"), (0.25, "orange"), (0.5, "green"))),
    Panel("Token requests per second",
          (q("warden:token_requests:rate1m", "{{job}}"),), "reqps",
          description="M8: token request QPS (1-minute rate)."),
    Panel("Issuance latency p50 / p95 / p99",
          (q("warden:token_request_duration_seconds:p50_rate5m", "p50 {{job}}"),
           q("warden:token_request_duration_seconds:p95_rate5m", "p95 {{job}}"),
           q("warden:token_request_duration_seconds:p99_rate5m", "p99 {{job}}")), "s",
          description="M2: target p95 < 200 ms.", thresholds=((0, "green"), (0.2, "red"))),
    Panel("Validation p95 latency at resource servers",
          (q("warden:resource_validation_seconds:p95_rate5m", "{{job}}"),), "s",
          description="M3: warden.resource validation, target p95 < 10 ms.",
          thresholds=((0, "green"), (0.01, "red"))),
    Panel("Token reuse in client caches",
          (q("warden:client_token_cache:hit_ratio_rate5m", "{{job}}"),), "percentunit",
          description="M5: share of get_token() calls served from the cache, target > 90 %.",
          thresholds=((0, "red"), (0.9, "green"))),
    Panel("Peak 1-minute request rate (1 h)",
          (q("warden:token_requests:peak_rate1m_1h", "{{job}}"),), "reqps",
          description="M10: the highest 1-minute token request rate of the last hour."),
    Panel("Unauthorised calls at resource servers",
          (q("warden:resource_validations:invalid_ratio_rate5m", "{{job}}"),), "percentunit",
          description="M9: share of calls refused with 401 or 403."),
)

ONCALL = (
    Panel("Issuance success (1 m)",
          (q("warden:token_issuance:success_ratio_rate1m", "{{job}}"),), "percentunit",
          description="Pages below 99 % for a minute (WardenIssuanceSuccessLow).",
          thresholds=((0, "red"), (0.99, "green"))),
    Panel("Burn rate by window",
          tuple(q(f"warden:token_errors:ratio_rate{w} / {BUDGET}", f"{w} {{{{job}}}}")
                for w in ("5m", "30m", "1h", "6h", "1d", "3d")), "short",
          "Error-budget burn rate (1 = spending exactly the budget). Pages at 14.4 (1h and 5m) and 6 (6h and 30m).",
          ((0, "green"), (6, "orange"), (14.4, "red"))),
    Panel("Instances up", (q('up{job="warden"}', "{{instance}}"),), "short",
          description="WardenServiceDown pages when none is up; WardenInstanceDown tickets one."),
    Panel("Token request p50 / p95 / p99",
          (q("warden:token_request_duration_seconds:p50_rate5m", "p50"),
           q("warden:token_request_duration_seconds:p95_rate5m", "p95"),
           q("warden:token_request_duration_seconds:p99_rate5m", "p99")), "s",
          thresholds=((0, "green"), (0.2, "red"))),
    Panel("Requests by outcome", (q("warden:token_requests:rate5m", "{{outcome}}"),), "reqps"),
    Panel("429 rate", (q("sum by (limit) (rate(warden_rate_limited_total[5m]))", "{{limit}}"),), "reqps",
          description="Token, introspection and revocation requests refused by a rate limit."),
    Panel("Registry staleness", (q("max by (instance) (warden_registry_staleness_seconds)", "{{instance}}"),), "s",
          description="Readiness fails past 30 s, issuance past 300 s.", thresholds=((0, "green"), (30, "red"))),
    Panel("Signing key: time to rotation",
          (q("min by (alg) (warden_signing_key_rotation_due_seconds)", "{{alg}}"),), "s",
          description="Negative = overdue (WardenSigningKeyRotationOverdue)."),
    Panel("Old secret use and grace remaining",
          (q("sum(rate(warden_old_secret_authentications_total[5m]))", "old-secret authentications/s"),
           q("min(warden_client_secret_grace_remaining_seconds) / 3600", "hours of grace left")), "short",
          description="Authentications with a secret that has a successor, and the earliest grace end."),
    Panel("JWKS fetches at resource servers",
          (q("sum by (job, result) (rate(warden_resource_jwks_fetches_total[15m]))", "{{job}} {{result}}"),), "reqps"),
    Panel("Unauthorised calls at resource servers (401/403)",
          (q("sum by (job, reason) (warden:resource_validations:invalid_rate5m)", "{{job}} {{reason}}"),), "reqps",
          description="insufficient_scope is a 403, every other reason a 401."),
)

DEBUG = (
    Panel("Token requests by reason",
          (q("sum by (outcome, reason) (rate(warden_token_requests_total[5m]))", "{{outcome}} {{reason}}"),), "reqps"),
    Panel("Auth failures by method and reason",
          (q("warden:auth_failures:rate5m", "{{method}} {{reason}}"),), "reqps", description="M4."),
    Panel("Top clients by request rate",
          (q("topk(10, warden:client_requests:rate5m)", "{{client}}"),), "reqps",
          description="The top N clients by volume (metrics.top_clients); the rest as client=\"other\"."),
    Panel("HTTP requests by route and code",
          (q("sum by (route, code) (rate(warden_http_requests_total[5m]))", "{{route}} {{code}}"),), "reqps"),
    Panel("Validation failures by reason",
          (q('sum by (job, reason) (rate(warden_resource_validations_total{outcome="invalid"}[5m]))',
             "{{job}} {{reason}}"),), "reqps"),
    Panel("Resource key cache hit ratio",
          (q('sum by (job) (rate(warden_resource_key_cache_total{result="hit"}[5m])) '
             "/ sum by (job) (rate(warden_resource_key_cache_total[5m]))", "{{job}}"),), "percentunit"),
    Panel("Client token cache hit ratio",
          (q("warden:client_token_cache:hit_ratio_rate5m", "{{job}}"),), "percentunit", description="M5."),
    Panel("Client token fetch latency p95",
          (q("histogram_quantile(0.95, sum by (job, le) (rate(warden_client_token_fetch_seconds_bucket[5m])))",
             "{{job}}"),), "s"),
    Panel("Client token fetches: renewals, retries, failures",
          (q("sum by (job) (rate(warden_client_token_renewals_total[5m]))", "renewals {{job}}"),
           q("sum by (job) (rate(warden_client_token_fetch_retries_total[5m]))", "retries {{job}}"),
           q("sum by (job, code) (rate(warden_client_token_fetch_failures_total[5m]))", "failed {{code}}")), "reqps"),
    Panel("Revocations", (q("warden:tokens_revoked:rate5m", "{{kind}}"),
                          q("sum by (result) (rate(warden_revocation_requests_total[5m]))", "endpoint {{result}}")),
          "reqps", description="M7."),
    Panel("Introspection by result",
          (q("sum by (result) (rate(warden_introspection_requests_total[5m]))", "{{result}}"),), "reqps"),
    Panel("Secret rotation lag and oldest secret age",
          (q("warden:client_secret_rotation_lag_seconds:max / 86400", "rotation lag (days)"),
           q("max(warden_client_secret_oldest_age_seconds) / 86400", "oldest secret (days)")), "short",
          description="M6."),
    Panel("Signing key age", (q("max by (alg) (warden_signing_key_age_seconds) / 86400", "{{alg}}"),), "short",
          description="Days since the active key of each algorithm started signing."),
    Panel("Process CPU and memory",
          (q('sum by (instance) (rate(process_cpu_seconds_total{job="warden"}[5m]))', "CPU {{instance}}"),
           q('sum by (instance) (process_resident_memory_bytes{job="warden"}) / 1e9', "RSS GB {{instance}}")),
          "short"),
    Panel("Version", (q("count by (version, python) (warden_build_info)", "{{version}} (Python {{python}})"),),
          "short", "stat"),
)

DASHBOARDS = {
    "executive": ("Warden: executive", "Is the identity service meeting its objectives?", EXECUTIVE),
    "oncall": ("Warden: on-call", "What is broken right now, and since when?", ONCALL),
    "debug": ("Warden: debug", "Who and what drives the load and the failures?", DEBUG),
}

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def render_panel(panel: Panel, index: int) -> dict[str, object]:
    width = 6 if panel.kind == "stat" else 12
    per_row = 24 // width
    steps = [{"color": color, "value": None if i == 0 else value}
             for i, (value, color) in enumerate(panel.thresholds or ((0, "green"),))]
    return {
        "id": index + 1,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": (index % per_row) * width, "y": (index // per_row) * 8, "w": width, "h": 8},
        "fieldConfig": {"defaults": {"unit": panel.unit,
                                     "thresholds": {"mode": "absolute", "steps": steps}},
                        "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}} if panel.kind == "stat" else
                   {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": query.expr,
                     "legendFormat": query.legend} for i, query in enumerate(panel.queries)],
    }


def render_dashboard(name: str) -> dict[str, object]:
    title, description, panels = DASHBOARDS[name]
    stats = [p for p in panels if p.kind == "stat"]
    others = [p for p in panels if p.kind != "stat"]
    rendered = [render_panel(p, i) for i, p in enumerate(stats)]
    offset = ((len(stats) + 3) // 4) * 8
    for i, panel in enumerate(others):
        item = render_panel(panel, i)
        item["id"] = len(rendered) + 1
        item["gridPos"]["y"] += offset  # type: ignore[index]
        rendered.append(item)
    return {
        "uid": f"warden-{name}",
        "title": title,
        "description": description,
        "tags": ["warden"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "annotations": {"list": []},
        "panels": rendered,
    }


def render_all() -> dict[Path, str]:
    return {HERE / f"{name}.json": json.dumps(render_dashboard(name), indent=2) + "\n" for name in DASHBOARDS}


def main(argv: list[str]) -> int:
    stale = []
    for path, text in render_all().items():
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)} (run: python deploy/grafana/generate.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
