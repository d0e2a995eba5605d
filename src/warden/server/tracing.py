"""Traces from `warden serve`, configured by the standard OpenTelemetry variables.

Tracing is on when `OTEL_TRACES_EXPORTER` is set (to `otlp`, or `console` for a look on stdout;
`none` keeps it off). The OTLP/HTTP exporter reads the rest itself: `OTEL_EXPORTER_OTLP_ENDPOINT`
or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`
(default `warden`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`... Needs the `otel` extra.

Each request is a server span that continues an incoming W3C `traceparent`; the token
endpoint's steps are child spans (client authentication, policy, signing: `services.steps`).
Attributes are the method, the route, the status and the private reason of a refusal, never
a header, a form field, a secret or a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from warden.errors import ConfigError

__all__ = ["RequestTracer", "configure_tracing"]


def configure_tracing(environ: Mapping[str, str]) -> Any:
    """Install a tracer provider as the environment asks; return it (to shut down), or None when off."""
    exporter_name = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter_name in ("", "none"):
        return None
    if exporter_name not in ("otlp", "console"):
        raise ConfigError(f"OTEL_TRACES_EXPORTER={exporter_name}: expected otlp, console or none")
    try:
        from opentelemetry import propagate, trace  # noqa: F401  (propagate: used by RequestTracer)
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        raise ConfigError("OTEL_TRACES_EXPORTER is set but OpenTelemetry is not installed "
                          "(pip install 'warden-m2m[otel]')") from None
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol and protocol != "http/protobuf":
            raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: Warden exports http/protobuf only")
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigError("OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http "
                              "(pip install 'warden-m2m[otel]')") from None
        exporter = OTLPSpanExporter()
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": "warden"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


class RequestTracer:
    """The server span of one request (used by `WardenApp.respond` when tracing is on)."""

    def __init__(self) -> None:
        from opentelemetry import propagate, trace

        self._tracer = trace.get_tracer("warden.server")
        self._extract = propagate.extract
        self._server_kind = trace.SpanKind.SERVER

    def start(self, method: str, route: str, headers: Mapping[bytes, bytes]) -> Any:
        carrier = {}
        for name in (b"traceparent", b"tracestate"):
            value = headers.get(name)
            if value is not None:
                carrier[name.decode()] = value.decode("latin-1")
        context = self._extract(carrier)
        return self._tracer.start_as_current_span(
            f"{method} {route}", context=context, kind=self._server_kind, record_exception=False,
            attributes={"http.request.method": method, "http.route": route})
