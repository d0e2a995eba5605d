"""Prometheus metrics. Labels take values from closed sets (outcomes, reasons, routes, methods),
never client ids or tokens, so cardinality stays bounded. The one per-client series,
`warden_client_requests_total`, names only the top `metrics.top_clients` clients by volume and
folds the rest into `client="other"` (`TopClients`).

With several worker processes, `warden serve` sets PROMETHEUS_MULTIPROC_DIR before the
workers start and /metrics aggregates all of them: counters and histograms are summed,
gauges take the max (ages, lags) or the min (time left); the top-client counts of each
worker are written beside prometheus_client's files and summed at scrape time.

`labels()` validates its arguments and takes a lock on every call, which is a
noticeable share of a token request; `Labelled` looks each child up once.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from warden import __version__
from warden.core.redaction import redact

__all__ = ["CONTENT_TYPE_LATEST", "ROUTES", "Labelled", "Metrics", "TopClients", "render_metrics", "route_of",
           "worker_replacements"]

M = TypeVar("M", Counter, Gauge, Histogram)

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series double the exposition for no operational use

TOKEN_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5)

# path -> route label (closed set); anything else is "admin" under /admin/, else "other".
ROUTES = {
    "/oauth2/token": "token", "/oauth2/introspect": "introspect", "/oauth2/revoke": "revoke",
    "/oauth2/jwks": "jwks", "/.well-known/oauth-authorization-server": "metadata", "/metrics": "metrics",
    "/healthz": "health", "/readyz": "health",
}


def route_of(path: str) -> str:
    route = ROUTES.get(path)
    if route is not None:
        return route
    if path.startswith("/admin/"):
        return "admin"
    if path.startswith("/console"):
        return "console"
    return "other"


class Labelled(Generic[M]):
    """The labelled children of one metric, cached by label values (closed sets, so bounded)."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*map(redact, values))
        return child


class TopClients(Collector):
    """Token requests per client, exposed for the `top` busiest clients only; the rest are one
    `client="other"` series. Counting is a dict increment (the token hot path); ranking happens
    at scrape time. Only authenticated clients are counted, so the dict is bounded by the registry.

    A client can enter or leave the top set between scrapes; its share then moves to or from
    "other", and the sum over all series stays the total."""

    NAME = "warden_client_requests_total"

    def __init__(self, top: int, directory: str | None = None) -> None:
        self.top = top
        self.counts: dict[str, int] = {}
        self._directory = directory
        self._lock = threading.Lock()

    def record(self, client_id: str) -> None:
        counts = self.counts
        counts[client_id] = counts.get(client_id, 0) + 1

    def flush(self) -> None:
        """Multiprocess mode: write this process's counts where the scraping worker reads them."""
        if self._directory is None:
            return
        path = os.path.join(self._directory, f"warden_clients_{os.getpid()}.json")
        with self._lock:
            data = json.dumps(dict(self.counts))
            tmp = f"{path}.tmp"
            with open(tmp, "w") as fh:
                fh.write(data)
            os.replace(tmp, path)

    def totals(self) -> dict[str, int]:
        if self._directory is None:
            return dict(self.counts)
        self.flush()
        totals: dict[str, int] = {}
        for path in glob.glob(os.path.join(self._directory, "warden_clients_*.json")):
            try:
                with open(path) as fh:
                    counts = json.load(fh)
            except (OSError, ValueError):
                continue
            for client_id, count in counts.items():
                totals[client_id] = totals.get(client_id, 0) + int(count)
        return totals

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.NAME.removesuffix("_total"),
                                     f"Token requests of the {self.top} busiest clients; the rest as client=\"other\"",
                                     labels=["client"])
        ranked = sorted(self.totals().items(), key=lambda item: (-item[1], item[0]))
        for client_id, count in ranked[:self.top]:
            family.add_metric([client_id], float(count))
        family.add_metric(["other"], float(sum(count for _, count in ranked[self.top:])))
        yield family


class Metrics:
    def __init__(self, top_clients: int = 20) -> None:
        # A registry per application, so several apps can live in one process (tests).
        self.registry = CollectorRegistry()
        r = self.registry
        self.token_requests = Counter("warden_token_requests_total", "Token requests by outcome and reason",
                                      ["outcome", "reason"], registry=r)
        self.token_seconds = Histogram("warden_token_request_duration_seconds",
                                       "Time to answer a token request, by outcome", ["outcome"],
                                       buckets=TOKEN_BUCKETS, registry=r)
        self.issuance_seconds = Histogram("warden_token_issuance_seconds", "Time to answer a successful token request",
                                          buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5), registry=r)
        self.auth_failures = Counter("warden_auth_failures_total", "Failed client authentications by method and reason",
                                     ["method", "reason"], registry=r)
        self.introspections = Counter("warden_introspection_requests_total", "Introspection requests by result",
                                      ["result"], registry=r)
        self.revocations = Counter("warden_revocation_requests_total", "Revocation requests by result",
                                   ["result"], registry=r)
        self.shared_state_up = Gauge("warden_shared_state_up", "1 while Redis (redis_url) is reachable, 0 while "
                                     "limits run on each node's share and single-use checks answer 503",
                                     registry=r, multiprocess_mode="min")
        self.tokens_revoked = Counter("warden_tokens_revoked_total",
                                      "Revocations made: one token (jti) or all of a client's tokens", ["kind"],
                                      registry=r)
        self.rate_limited = Counter("warden_rate_limited_total", "Requests refused by a rate limit", ["limit"], registry=r)
        self.http_requests = Counter("warden_http_requests_total", "HTTP requests by route and status code",
                                     ["route", "code"], registry=r)
        self.old_secret_auths = Counter("warden_old_secret_authentications_total",
                                        "Successful authentications with a secret that has a newer successor",
                                        registry=r)
        self.key_age = Gauge("warden_signing_key_age_seconds", "Age of the active signing key", ["alg"],
                             multiprocess_mode="max", registry=r)
        self.key_rotation_due = Gauge("warden_signing_key_rotation_due_seconds",
                                      "Seconds until the active key's scheduled rotation (negative: overdue)", ["alg"],
                                      multiprocess_mode="min", registry=r)
        self.oldest_secret_age = Gauge("warden_client_secret_oldest_age_seconds",
                                       "Age of the oldest active client secret", multiprocess_mode="max", registry=r)
        self.secret_rotation_lag = Gauge("warden_client_secret_rotation_lag_seconds",
                                         "Max over clients: age of the oldest active secret that has a newer successor",
                                         multiprocess_mode="max", registry=r)
        self.secret_grace_remaining = Gauge("warden_client_secret_grace_remaining_seconds",
                                            "Min over superseded secrets in grace: seconds until their grace ends",
                                            multiprocess_mode="min", registry=r)
        self.registry_store_lookups = Counter(
            "warden_registry_store_lookups_total",
            "Database queries of a partial registry's miss path (clients not cached, workload identities)",
            registry=r)
        self.registry_store_lookup_ids = Counter(
            "warden_registry_store_lookup_ids_total", "Client ids those queries asked for", registry=r)
        self.registry_age = Gauge("warden_registry_staleness_seconds",
                                  "Seconds since the cached registry was last refreshed",
                                  multiprocess_mode="max", registry=r)
        self.build_info = Gauge("warden_build_info", "Warden's version and Python's", ["version", "python"],
                                multiprocess_mode="max", registry=r)
        self.build_info.labels(__version__, platform.python_version()).set(1)
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.top_clients = TopClients(top_clients, directory)
        r.register(self.top_clients)
        if directory is None:
            ProcessCollector(registry=r)
        # Cached children, positional in label order: token_outcome(outcome, reason), token_latency(outcome),
        # auth_failed(method, reason), introspected(result), revoked(result), revoked_tokens(kind),
        # limited(limit), http(route, code).
        self.token_outcome = Labelled(self.token_requests)
        self.token_latency = Labelled(self.token_seconds)
        self.auth_failed = Labelled(self.auth_failures)
        self.introspected = Labelled(self.introspections)
        self.revoked = Labelled(self.revocations)
        self.revoked_tokens = Labelled(self.tokens_revoked)
        self.limited = Labelled(self.rate_limited)
        self.http = Labelled(self.http_requests)


def worker_replacements() -> Counter:
    """The supervisor's one series (`warden serve --workers N`): workers it replaced, by cause (`exited`,
    or `unresponsive`: no heartbeat for `server.heartbeat_timeout`). The supervisor runs under the same
    PROMETHEUS_MULTIPROC_DIR as its workers, so the series appears in every worker's /metrics."""
    from prometheus_client import values

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and values.ValueClass is values.MutexValue:
        # prometheus_client picked its value store at import, before `warden serve` set the directory;
        # the supervisor creates no other metric, so choosing again here affects only this series
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return Counter("warden_worker_replacements_total", "Workers the supervisor replaced, by cause", ["cause"],
                   registry=None)


class _Collected(Collector):
    def __init__(self, collectors: Iterable[Collector]) -> None:
        self._collectors = list(collectors)

    def collect(self) -> Iterator[object]:  # type: ignore[override]
        for collector in self._collectors:
            yield from collector.collect()


def render_metrics(metrics: Metrics) -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        # Top clients are summed over the workers' files; process_* describes the worker that answered.
        registry.register(_Collected([metrics.top_clients, ProcessCollector(registry=None)]))
        return generate_latest(registry)
    return generate_latest(metrics.registry)
