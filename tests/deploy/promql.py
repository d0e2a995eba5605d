"""What the rules and dashboards may name: the metric names in a PromQL expression, and the names
Warden exports.

`metric_names` is a small tokenizer, not a PromQL parser: it drops string literals, label
matchers, range/offset durations and the label lists of `by`/`without`/`on`/`ignoring`/
`group_left`/`group_right`, then keeps the identifiers that are not functions or keywords. That
is enough for the expressions we write, and the tests that use it also run the expressions
through Prometheus itself.

`CONTRACT` is the list of series Warden's server, `warden.resource`, `warden.client` and the
agent export (the metrics contract of issue 11); `declared_in_source` reads the names the code
declares today, so a test can tell a dashboard typo from a metric that has not landed yet.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "count", "count_over_time", "count_values", "deriv", "delta", "exp", "floor",
    "group", "histogram_quantile", "holt_winters", "idelta", "increase", "irate", "label_join",
    "label_replace", "last_over_time", "ln", "log2", "log10", "max", "max_over_time", "min", "min_over_time",
    "predict_linear", "quantile", "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort",
    "sort_desc", "sqrt", "stddev", "stddev_over_time", "stdvar", "sum", "sum_over_time", "time", "timestamp",
    "topk", "vector", "present_over_time",
}
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
             "bool", "inf", "nan"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)")
_TEMPLATE = re.compile(r"\$\{?\w+\}?")  # Grafana variables ($__rate_interval, ${job})


def metric_names(expr: str) -> set[str]:
    text = _STRING.sub('""', expr)
    text = _TEMPLATE.sub("5m", text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    text = re.sub(r"\boffset\s+\w+", "", text)
    names = set()
    for match in _IDENT.finditer(text):
        name = match.group(1)
        rest = text[match.end():].lstrip()
        if name.lower() in _KEYWORDS or (name in _FUNCTIONS and rest.startswith("(")):
            continue
        if re.fullmatch(r"\d+[smhdwy]", name):
            continue
        names.add(name)
    return names


_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# Issue 11's metrics contract, as exported series names (histograms by their base name).
CONTRACT = frozenset({
    # server
    "warden_token_requests_total", "warden_token_request_duration_seconds", "warden_token_issuance_seconds",
    "warden_auth_failures_total", "warden_introspection_requests_total", "warden_revocation_requests_total",
    "warden_tokens_revoked_total", "warden_rate_limited_total", "warden_http_requests_total",
    "warden_client_requests_total", "warden_client_secret_oldest_age_seconds",
    "warden_client_secret_rotation_lag_seconds", "warden_old_secret_authentications_total",
    "warden_client_secret_grace_remaining_seconds", "warden_signing_key_age_seconds",
    "warden_signing_key_rotation_due_seconds", "warden_registry_staleness_seconds", "warden_build_info",
    # warden.resource
    "warden_resource_validation_seconds", "warden_resource_validations_total",
    "warden_resource_jwks_fetches_total", "warden_resource_key_cache_total",
    # warden.client and the agent
    "warden_client_token_cache_total", "warden_client_token_fetch_seconds", "warden_client_token_renewals_total",
    "warden_client_token_fetch_retries_total", "warden_client_token_fetch_failures_total",
    # process collector and Prometheus itself
    "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds",
    "up",
})


def base_name(name: str) -> str:
    for suffix in _HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in CONTRACT:
            return name[: -len(suffix)]
    return name


def recorded_names() -> set[str]:
    import yaml

    names = set()
    for path in (REPO / "deploy" / "prometheus").glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return names


def declared_in_source() -> set[str]:
    """warden_* names that appear as string literals under src/warden (what the code exports today)."""
    found = set()
    for path in (REPO / "src" / "warden").rglob("*.py"):
        found.update(re.findall(r"[\"'](warden_[a-z0-9_]+)[\"']", path.read_text()))
    return {base_name(name) for name in found}


def pending_metrics() -> set[str]:
    """Contract names the code does not declare yet (landing with the instrumentation work)."""
    pending = {n for n in CONTRACT if n.startswith("warden_")} - declared_in_source()
    source = "".join(p.read_text() for p in (REPO / "src" / "warden" / "server").rglob("*.py"))
    if not re.search(r"(?<!Multi)ProcessCollector|PROCESS_COLLECTOR", source):
        pending |= {n for n in CONTRACT if n.startswith("process_")}
    return pending


def underlying_metrics(names: set[str]) -> set[str]:
    """The exported metrics behind `names`, following recording rules to what they read."""
    import yaml

    records: dict[str, set[str]] = {}
    for path in (REPO / "deploy" / "prometheus").glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    records.setdefault(rule["record"], set()).update(metric_names(rule["expr"]))
    out: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in records:
            todo.extend(records.pop(name))
        elif ":" not in name:
            out.add(base_name(name))
    return out
