"""Spans without a dependency: OpenTelemetry is used only when the application already imported it.

The libraries (`warden.client`, `warden.resource`) and the server call `span(name, **attributes)`.
When `opentelemetry.trace` has been imported by someone (the application that configures
tracing, or `warden serve` with `OTEL_TRACES_EXPORTER` set), spans go to its tracer provider;
otherwise `span` is a no-op and nothing imports opentelemetry. Attributes are names, outcomes
and reasons only: callers never pass a secret, a key or a token.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

__all__ = ["inject_traceparent", "set_attributes", "span"]

_NULL: AbstractContextManager[None] = nullcontext()


def _trace() -> Any:
    return sys.modules.get("opentelemetry.trace")


def span(name: str, **attributes: str | float | bool) -> AbstractContextManager[Any]:
    """A span named `name` under the current one, or a no-op when OpenTelemetry is not in use."""
    trace = _trace()
    if trace is None:
        return _NULL
    return _span(trace, name, attributes)


@contextmanager
def _span(trace: Any, name: str, attributes: dict[str, Any]) -> Iterator[Any]:
    with trace.get_tracer("warden").start_as_current_span(name, attributes=attributes) as current:
        yield current


def set_attributes(current: Any, attributes: dict[str, Any]) -> None:
    """Add attributes to a span from `span` (ignored when tracing is off)."""
    if current is not None:
        current.set_attributes(attributes)


def inject_traceparent(headers: MutableMapping[str, str]) -> None:
    """Add the W3C `traceparent` of the current span to outgoing request headers, if tracing is on."""
    if _trace() is None:
        return
    from opentelemetry import propagate  # imported already by whoever imported opentelemetry.trace's SDK

    propagate.inject(headers)
