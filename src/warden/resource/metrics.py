"""Prometheus metrics for a resource server, on a registry the application passes in.

    from prometheus_client import REGISTRY
    from warden.resource import Validator
    from warden.resource.metrics import ResourceMetrics
    v = Validator(issuer, audience, metrics=ResourceMetrics(REGISTRY))

Series (labels are closed sets; never a token, a subject or a client id):
`warden_resource_validation_seconds{outcome}` (M3), `warden_resource_validations_total{outcome,
reason}` (M9: reason `insufficient_scope` is a 403, the others 401), `warden_resource_jwks_fetches_total
{result}` and `warden_resource_key_cache_total{result}`. prometheus-client is imported here only
(`pip install warden-m2m[metrics]`), so the base install stays free of it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ResourceMetrics"]

VALIDATION_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)


class ResourceMetrics:
    """The resource-server series on `registry` (a `prometheus_client.CollectorRegistry`)."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.seconds = Histogram("warden_resource_validation_seconds", "Time to validate an access token",
                                 ["outcome"], buckets=VALIDATION_BUCKETS, registry=registry)
        self.validations = Counter("warden_resource_validations_total", "Access token validations by outcome",
                                   ["outcome", "reason"], registry=registry)
        self.jwks_fetches = Counter("warden_resource_jwks_fetches_total", "JWKS fetches by result", ["result"],
                                    registry=registry)
        self.key_cache = Counter("warden_resource_key_cache_total", "Verification key lookups by result",
                                 ["result"], registry=registry)
        self._children: dict[tuple[str, ...], Any] = {}
        self._valid_seconds = self.seconds.labels("valid")
        self._valid = self.validations.labels("valid", "ok")
        self._hit = self.key_cache.labels("hit")

    def validated(self, seconds: float) -> None:
        self._valid_seconds.observe(seconds)
        self._valid.inc()

    def refused(self, reason: str, seconds: float) -> None:
        child = self._children.get(("invalid", reason))
        if child is None:
            child = self._children[("invalid", reason)] = self.validations.labels("invalid", reason)
        child.inc()
        self.seconds.labels("invalid").observe(seconds)

    def key_lookup(self, hit: bool) -> None:
        (self._hit if hit else self.key_cache.labels("miss")).inc()

    def jwks_fetched(self, ok: bool) -> None:
        self.jwks_fetches.labels("ok" if ok else "error").inc()
