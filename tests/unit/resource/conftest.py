"""Fixtures for the resource-server unit tests (see resource_helpers for the fake issuer)."""

from resource_helpers import (  # noqa: F401 - pytest finds fixtures by name
    clock,
    http_clients,
    issuer,
    keys,
    make_validator,
    other_keys,
    validator,
)
