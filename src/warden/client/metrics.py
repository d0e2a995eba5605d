"""Prometheus metrics for `ClientCredentials` (and the agent), on a registry the application passes in.

    from prometheus_client import REGISTRY
    from warden.client import ClientCredentials
    from warden.client.metrics import ClientMetrics
    creds = ClientCredentials(issuer, client_id=..., client_secret=..., metrics=ClientMetrics(REGISTRY))

Series: `warden_client_token_cache_total{result="hit|miss"}` (M5: hits / (hits + misses) is the
token reuse ratio), `warden_client_token_fetch_seconds` (one token request, network included),
`warden_client_token_renewals_total`, `warden_client_token_fetch_retries_total` and
`warden_client_token_fetch_failures_total{code}` (the OAuth error code, or `network`). Labels are
closed sets: never a client id or a token. prometheus-client is imported here only
(`pip install warden-m2m[metrics]`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FAILURE_CODES", "FETCH_BUCKETS", "ClientMetrics"]

FETCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FAILURE_CODES = frozenset({"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                    "unsupported_grant_type", "invalid_scope", "invalid_target", "invalid_dpop_proof",
                    "use_dpop_nonce", "slow_down", "temporarily_unavailable", "server_error", "network"})


class ClientMetrics:
    """The client-side series on `registry` (a `prometheus_client.CollectorRegistry`)."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.cache = Counter("warden_client_token_cache_total", "Token requests by the application: cache hit or miss",
                             ["result"], registry=registry)
        self.fetch_seconds = Histogram("warden_client_token_fetch_seconds", "Time of one token request",
                                       buckets=FETCH_BUCKETS, registry=registry)
        self.renewals = Counter("warden_client_token_renewals_total", "Tokens obtained to replace an earlier one",
                                registry=registry)
        self.retries = Counter("warden_client_token_fetch_retries_total", "Token requests retried after a failure",
                               registry=registry)
        self.failures = Counter("warden_client_token_fetch_failures_total", "Failed token requests by error code",
                                ["code"], registry=registry)
        self._hit = self.cache.labels("hit")
        self._miss = self.cache.labels("miss")

    def hit(self) -> None:
        self._hit.inc()

    def miss(self) -> None:
        self._miss.inc()

    def fetched(self, seconds: float) -> None:
        self.fetch_seconds.observe(seconds)

    def renewed(self) -> None:
        self.renewals.inc()

    def retried(self) -> None:
        self.retries.inc()

    def failed(self, code: str) -> None:
        # Codes come from the server: anything outside the registered set is "server_error", so a
        # misbehaving server cannot grow the label set.
        if code == "network_error":
            code = "network"
        self.failures.labels(code if code in FAILURE_CODES else "server_error").inc()
