"""warden.resource.metrics: validation latency and outcomes (M3, M9), JWKS fetches, key-cache hits,
on the registry the application passes in."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry
from resource_helpers import FakeIssuer

from warden.protocol.errors import InsufficientScope, InvalidToken
from warden.resource import Validator
from warden.resource.metrics import ResourceMetrics


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_validations_fetches_and_key_cache_are_counted(make_validator: Callable[..., Validator],
                                                       issuer: FakeIssuer) -> None:
    registry = CollectorRegistry()
    validator = make_validator(metrics=ResourceMetrics(registry))
    token = issuer.mint("ES256")
    validator.validate(token)
    validator.validate(token)  # the validation cache answers: still counted as a valid validation
    with pytest.raises(InsufficientScope):
        validator.validate(token, scopes=["nope"])
    with pytest.raises(InvalidToken):
        validator.validate("not.a.token")
    assert value(registry, "warden_resource_validations_total", outcome="valid", reason="ok") == 2
    assert value(registry, "warden_resource_validations_total", outcome="invalid", reason="insufficient_scope") == 1
    assert value(registry, "warden_resource_validation_seconds_count", outcome="valid") == 2
    assert value(registry, "warden_resource_validation_seconds_count", outcome="invalid") == 2
    assert value(registry, "warden_resource_jwks_fetches_total", result="ok") == 1
    assert value(registry, "warden_resource_key_cache_total", result="miss") == 1
    other = make_validator(metrics=ResourceMetrics(CollectorRegistry()), jwks=validator.jwks)
    other.validate(issuer.mint("ES256"))
    assert value(registry, "warden_resource_key_cache_total", result="hit") == 0  # each validator its own registry
    validator.validate(issuer.mint("ES256"))
    assert value(registry, "warden_resource_key_cache_total", result="hit") == 1


def test_jwks_failures_are_counted(make_validator: Callable[..., Validator], issuer: FakeIssuer) -> None:
    registry = CollectorRegistry()
    validator = make_validator(metrics=ResourceMetrics(registry))
    issuer.fail = True
    with pytest.raises(Exception):  # noqa: B017 - 503 TemporarilyUnavailable: the keys were never reachable
        validator.validate(issuer.mint("ES256"))
    assert value(registry, "warden_resource_jwks_fetches_total", result="error") >= 1
    text = "\n".join(str(s) for m in registry.collect() for s in m.samples)
    assert "eyJ" not in text  # no token in any label
