"""warden.client.metrics: cache hits and misses (M5), fetch latency, renewals, retries, failures by code."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry

from warden.client import ClientCredentials, TokenError
from warden.client.metrics import ClientMetrics


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_cache_fetches_renewals_and_failures(mock_as, clock) -> None:
    registry = CollectorRegistry()
    http = httpx.Client(transport=httpx.MockTransport(mock_as.handler))
    creds = ClientCredentials(mock_as.issuer, client_id="billing", client_secret="s3cret-value", http_client=http,
                              metrics=ClientMetrics(registry), sleep=lambda _: None, clock=clock)
    key = creds.cache_key()
    for _ in range(5):
        creds.get_token()
    assert value(registry, "warden_client_token_cache_total", result="miss") == 1
    assert value(registry, "warden_client_token_cache_total", result="hit") == 4
    assert value(registry, "warden_client_token_fetch_seconds_count") == 1
    clock.advance(400)  # past expiry: the next call fetches a replacement
    creds.get_token()
    assert value(registry, "warden_client_token_renewals_total") == 1
    mock_as.scripted = [httpx.Response(503, json={"error": "temporarily_unavailable"})]
    creds._cache.invalidate(key)
    creds.get_token()  # retried after the 503
    assert value(registry, "warden_client_token_fetch_failures_total", code="temporarily_unavailable") == 1
    assert value(registry, "warden_client_token_fetch_retries_total") == 1
    mock_as.scripted = [httpx.Response(401, json={"error": "invalid_client"})]
    creds._cache.invalidate(key)
    with pytest.raises(TokenError):
        creds.get_token()
    assert value(registry, "warden_client_token_fetch_failures_total", code="invalid_client") == 1
    mock_as.scripted = [httpx.Response(400, json={"error": "made_up_code_" + "x" * 50})]
    clock.advance(3600)  # past the backoff of the last failure
    with pytest.raises(TokenError):
        creds.get_token()
    assert value(registry, "warden_client_token_fetch_failures_total", code="server_error") == 1  # closed set
    text = "\n".join(str(s) for m in registry.collect() for s in m.samples)
    assert "s3cret" not in text and "at-1" not in text and "billing" not in text
