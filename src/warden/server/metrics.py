"""Prometheus metrics. Labels take values from closed sets (outcomes, reasons, endpoints),
never client ids or tokens, so cardinality stays bounded.

With several worker processes, `warden serve` sets PROMETHEUS_MULTIPROC_DIR before the
workers start and /metrics aggregates all of them.

`labels()` validates its arguments and takes a lock on every call, which is a
noticeable share of a token request; `Labelled` looks each child up once.
"""

from __future__ import annotations

import os
from typing import Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from warden.core.redaction import redact

__all__ = ["CONTENT_TYPE_LATEST", "Labelled", "Metrics", "render_metrics"]

M = TypeVar("M", Counter, Gauge, Histogram)

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series double the exposition for no operational use


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


class Metrics:
    def __init__(self) -> None:
        # A registry per application, so several apps can live in one process (tests).
        self.registry = CollectorRegistry()
        r = self.registry
        self.token_requests = Counter("warden_token_requests_total", "Token requests by outcome and reason",
                                      ["outcome", "reason"], registry=r)
        self.issuance_seconds = Histogram("warden_token_issuance_seconds", "Time to answer a successful token request",
                                          buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5), registry=r)
        self.introspections = Counter("warden_introspection_requests_total", "Introspection requests by result",
                                      ["result"], registry=r)
        self.revocations = Counter("warden_revocation_requests_total", "Revocation requests by result",
                                   ["result"], registry=r)
        self.shared_state_up = Gauge("warden_shared_state_up", "1 while Redis (redis_url) is reachable, 0 while "
                                     "limits run on each node's share and single-use checks answer 503",
                                     registry=r, multiprocess_mode="min")
        self.rate_limited = Counter("warden_rate_limited_total", "Requests refused by a rate limit", ["limit"], registry=r)
        self.key_age = Gauge("warden_signing_key_age_seconds", "Age of the active signing key", ["alg"],
                             multiprocess_mode="max", registry=r)
        self.oldest_secret_age = Gauge("warden_client_secret_oldest_age_seconds",
                                       "Age of the oldest active client secret", multiprocess_mode="max", registry=r)
        self.registry_age = Gauge("warden_registry_staleness_seconds",
                                  "Seconds since the cached registry was last refreshed",
                                  multiprocess_mode="max", registry=r)
        # Cached children, positional in label order: token_outcome(outcome, reason), introspected(result),
        # revoked(result), limited(limit).
        self.token_outcome = Labelled(self.token_requests)
        self.introspected = Labelled(self.introspections)
        self.revoked = Labelled(self.revocations)
        self.limited = Labelled(self.rate_limited)


def render_metrics(metrics: Metrics) -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(metrics.registry)
