"""Issue 11 as the operators see it, against `warden serve` as a subprocess: every series of
METRICS_CONTRACT.md moves after real requests (two workers, multiprocess aggregation), every line
the server writes is JSON with `log.format = json`, and traces reach a real OTLP/HTTP receiver
(continuing an incoming traceparent, with client, resource and step spans, and no secret or
token in any attribute)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.conftest import free_port, wait_until
from tests.integration.test_cli_e2e import Served, cli_json, run_cli

pytestmark = pytest.mark.slow


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDEN_", "OTEL_", "PROMETHEUS_"))}
    env["WARDEN_DATA_DIR"] = str(tmp_path / "data")
    env["WARDEN_AUDIT_SINK"] = str(tmp_path / "audit.jsonl")
    env["WARDEN_REGISTRY_POLL_INTERVAL"] = "0.25"
    env["WARDEN_LIMITS_FAILED_AUTH_PER_MINUTE"] = "100000"
    env.update(extra)
    # only `warden serve` and `warden init` create a data directory; the CLI steps here come first
    subprocess.run([sys.executable, "-m", "warden.cli.main", "init"], env=env, check=True, capture_output=True,
                   timeout=60)
    return env


def _samples(text: str) -> dict[str, float]:
    """Exposition lines -> value, keyed by the series as printed (name{labels})."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


def _sum(samples: dict[str, float], name: str, **labels: str) -> float:
    total = 0.0
    for series, value in samples.items():
        base, _, rest = series.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def _setup(env: dict[str, str]) -> tuple[str, str]:
    cli_json("apis", "create", "https://api.example", "--scopes", "read write", env=env)
    created = cli_json("clients", "create", "billing", "--grant", "https://api.example=read", env=env)
    return created["client_id"], created["client_secret"]


def _traffic(server: Served, cid: str, secret: str, env: dict[str, str]) -> tuple[str, str, dict[str, int]]:
    """Successful and failing requests of every kind; returns (new secret, a token, the requests a
    worker refused while its registry poll had not yet seen the new client, then the new secret)."""
    settling = {"unknown_client": 0, "wrong_secret": 0}

    def every_worker_accepts(candidate: str, reason: str) -> bool:
        codes = [server.token(cid, candidate).status_code for _ in range(4)]
        settling[reason] += codes.count(401)
        return codes == [200] * 4

    assert wait_until(lambda: every_worker_accepts(secret, "unknown_client"))
    rotated = cli_json("clients", "secrets", "rotate", cid, "--grace", "1h", env=env)["client_secret"]
    assert wait_until(lambda: every_worker_accepts(rotated, "wrong_secret"))
    for _ in range(4):
        assert server.token(cid, secret).status_code == 200  # the old secret, still in grace
    assert server.token(cid, "wrong").status_code == 401
    assert server.token("nobody", "x").status_code == 401
    assert httpx.post(f"{server.url}/oauth2/token", data={"grant_type": "client_credentials",
                                                           "client_id": cid, "client_secret": rotated}).status_code == 401
    assert httpx.post(f"{server.url}/oauth2/token", data={"grant_type": "client_credentials", "scope": "nope"},
                      auth=(cid, rotated)).status_code == 400
    token = server.token(cid, rotated).json()["access_token"]
    assert httpx.post(f"{server.url}/oauth2/introspect", data={"token": token}, auth=(cid, rotated)).status_code == 200
    assert httpx.post(f"{server.url}/oauth2/revoke", data={"token": token}, auth=(cid, rotated)).status_code == 200
    assert httpx.get(f"{server.url}/oauth2/jwks").status_code == 200
    assert httpx.get(f"{server.url}/nowhere").status_code == 404
    return rotated, token, settling


def test_every_contract_series_moves_after_real_requests_with_two_workers(tmp_path: Path):
    env = _env(tmp_path, WARDEN_METRICS_TOP_CLIENTS="3")
    server = Served(env, free_port(), workers=2)
    try:
        cid, secret = _setup(env)
        before = _samples(httpx.get(f"{server.url}/metrics").text)
        rotated, token, settling = _traffic(server, cid, secret, env)
        run_cli("tokens", "revoke", "--client", cid, env=env)

        text = httpx.get(f"{server.url}/metrics").text
        after = _samples(text)
        issued = _sum(after, "warden_token_requests_total", outcome="issued")
        assert issued >= 13
        assert issued - _sum(before, "warden_token_requests_total", outcome="issued") == issued  # none before
        # the workers' counts are summed: the histogram and the top-client series agree with the counter
        assert _sum(after, "warden_token_request_duration_seconds_count", outcome="issued") == issued
        assert _sum(after, "warden_token_issuance_seconds_count") == issued
        assert _sum(after, "warden_token_requests_total", outcome="refused") >= 4
        assert _sum(after, "warden_token_request_duration_seconds_count", outcome="refused") >= 4
        assert _sum(after, "warden_token_request_duration_seconds_bucket", outcome="issued", le="2.5") == issued
        for reason in ("wrong_secret", "unknown_client"):
            assert _sum(after, "warden_auth_failures_total", method="client_secret_basic",
                        reason=reason) == 1 + settling[reason], reason
        assert _sum(after, "warden_auth_failures_total", method="client_secret_post", reason="auth_method_mismatch") == 1
        assert _sum(after, "warden_introspection_requests_total", result="active") == 1
        assert _sum(after, "warden_revocation_requests_total", result="revoked") == 1
        assert _sum(after, "warden_tokens_revoked_total", kind="token") == 1
        assert _sum(after, "warden_http_requests_total", route="token", code="200") >= issued
        assert _sum(after, "warden_http_requests_total", route="token", code="401") == 3 + sum(settling.values())
        assert _sum(after, "warden_http_requests_total", route="jwks", code="200") == 1
        assert _sum(after, "warden_http_requests_total", route="other", code="404") == 1
        assert _sum(after, "warden_http_requests_total", route="metrics", code="200") >= 1
        assert _sum(after, "warden_old_secret_authentications_total") >= 4
        # each worker writes its per-client counts every second; the scrape sums them
        assert wait_until(lambda: _sum(_samples(httpx.get(f"{server.url}/metrics").text),
                                       "warden_client_requests_total", client=cid) >= issued)
        assert 'warden_client_requests_total{client="other"}' in after
        assert "warden_build_info" in text and 'version="' in text
        for gauge in ("warden_signing_key_age_seconds", "warden_signing_key_rotation_due_seconds",
                      "warden_client_secret_oldest_age_seconds", "warden_registry_staleness_seconds",
                      "process_resident_memory_bytes"):
            assert gauge in text, gauge
        # a client limited to one token a minute: its second request is refused by the rate limit
        limited = cli_json("clients", "create", "limited", "--grant", "https://api.example=read",
                           "--rate-limit", "0.0167", env=env)
        assert wait_until(lambda: server.token(limited["client_id"], limited["client_secret"]).status_code == 200)
        assert server.token(limited["client_id"], limited["client_secret"]).status_code == 429
        limited_now = _samples(httpx.get(f"{server.url}/metrics").text)
        assert _sum(limited_now, "warden_rate_limited_total", limit="client") >= 1
        for needle in (secret, rotated, token):
            assert needle not in text
    finally:
        server.stop()


def test_secret_rotation_gauges_at_start_up(tmp_path: Path):
    """Rotation lag and grace remaining come from the registry (start-up, then every 30 s)."""
    env = _env(tmp_path)
    cid, _ = _setup(env)
    run_cli("clients", "secrets", "rotate", cid, "--grace", "1h", env=env)
    server = Served(env, free_port(), workers=1)
    try:
        after = _samples(httpx.get(f"{server.url}/metrics").text)
        assert _sum(after, "warden_client_secret_rotation_lag_seconds") >= 0
        assert 3000 < _sum(after, "warden_client_secret_grace_remaining_seconds") <= 3600
        assert _sum(after, "warden_signing_key_rotation_due_seconds") > 0
    finally:
        server.stop()


def test_top_clients_are_bounded():
    from prometheus_client import generate_latest

    from warden.server.metrics import Metrics

    metrics = Metrics(top_clients=20)
    for n in range(1000):
        for _ in range(n % 7 + 1):
            metrics.top_clients.record(f"client-{n}")
    lines = [line for line in generate_latest(metrics.registry).decode().splitlines()
             if line.startswith("warden_client_requests_total{")]
    assert len(lines) == 21
    total = sum(float(line.rpartition(" ")[2]) for line in lines)
    assert total == sum(n % 7 + 1 for n in range(1000))  # nothing lost: the rest is client="other"


def test_json_logs_every_line_of_warden_serve(tmp_path: Path):
    env = _env(tmp_path, WARDEN_LOG_FORMAT="json", WARDEN_AUDIT_SINK="stdout", WARDEN_LOG_LEVEL="debug")
    server = Served(env, free_port(), workers=2)
    try:
        cid, secret = _setup(env)
        _traffic(server, cid, secret, env)
        httpx.post(f"{server.url}/oauth2/token", content=b"x" * 100_000,
                   headers={"content-type": "application/x-www-form-urlencoded"})
    finally:
        code, out, err = server.stop()
    assert code == 0, err
    lines = [("stdout", line) for line in out.splitlines()] + [("stderr", line) for line in err.splitlines()]
    assert len(lines) > 20
    events = []
    for stream, line in lines:
        entry = json.loads(line)  # every line, of both streams
        assert isinstance(entry, dict), line
        assert {"time", "event"} <= set(entry), line
        assert "level" in entry and "trace_id" in entry, line
        events.append((stream, entry))
    messages = [e["event"] for _, e in events]
    assert any("serving" in m for m in messages)  # the start-up line
    assert any("shutdown complete" in m for m in messages)
    assert any(e["event"] == "token.issued" for s, e in events if s == "stdout")  # audit on the same sink
    assert any(e["event"] == "client.authentication_failed" for _, e in events)
    assert secret not in out + err


def test_json_logs_include_alembic(tmp_path: Path):
    """A fresh data directory: `warden serve` runs the migrations itself, and Alembic's lines are JSON too."""
    env = _env(tmp_path, WARDEN_LOG_FORMAT="json", WARDEN_LOG_LEVEL="info")
    server = Served(env, free_port(), workers=1)
    code, out, err = server.stop()
    assert code == 0, err
    entries = [json.loads(line) for line in (out + err).splitlines()]
    assert any(e.get("logger", "").startswith("alembic") for e in entries), err


def test_audit_chain_verify(tmp_path: Path):
    from warden.services.audit import open_audit_sink

    path = tmp_path / "audit.jsonl"
    for _ in range(2):  # two writers, one after the other, keep one chain
        sink = open_audit_sink(str(path), chain=True)
        for n in range(3):
            sink.emit("client.created", actor="cli:test", client_id=f"c{n}")
        sink.close()
    env = _env(tmp_path)
    ok = run_cli("audit", "verify", str(path), env=env)
    assert "6 events, chain intact" in ok.stdout
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace('"c0"', '"cX"')
    path.write_text("\n".join(lines) + "\n")
    bad = run_cli("audit", "verify", str(path), env=env, check=False)
    assert bad.returncode == 1 and "line 5" in bad.stderr  # the line after the edited one no longer links
    del lines[3]
    path.write_text("\n".join(lines) + "\n")
    bad = run_cli("audit", "verify", str(path), env=env, check=False)
    assert bad.returncode == 1 and "line 4" in bad.stderr
    missing = run_cli("audit", "verify", str(tmp_path / "nope"), env=env, check=False)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


# -- traces ------------------------------------------------------------------------------------


class _Receiver:
    """A real OTLP/HTTP trace receiver: decodes ExportTraceServiceRequest protobufs."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        spans: list[dict[str, Any]] = []
        self.spans = spans
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = ExportTraceServiceRequest.FromString(body)
                with lock:
                    for resource_spans in request.resource_spans:
                        service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                        for scope_spans in resource_spans.scope_spans:
                            for span in scope_spans.spans:
                                spans.append({
                                    "service": service.get("service.name"), "name": span.name,
                                    "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                                    "parent": span.parent_span_id.hex(),
                                    "attributes": {a.key: str(a.value) for a in span.attributes},
                                    "events": [str(e) for e in span.events], "status": str(span.status)})
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


_CLIENT_SCRIPT = textwrap.dedent("""
    import json, sys
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from warden.client import ClientCredentials
    from warden.resource import Validator

    issuer, cid, secret, endpoint = sys.argv[1:5]
    provider = TracerProvider(resource=Resource.create({"service.name": "app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    with trace.get_tracer("app").start_as_current_span("app.call") as span:
        creds = ClientCredentials(issuer, client_id=cid, client_secret=secret, allow_insecure_http=True,
                                  audience="https://api.example")
        token = creds.get_token()
        Validator(issuer, "https://api.example").validate(token, scopes=["read"])
        print(json.dumps({"token": token, "trace_id": format(span.get_span_context().trace_id, "032x")}))
    provider.shutdown()
""")


def test_traces_reach_an_otlp_receiver(tmp_path: Path):
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    pytest.importorskip("opentelemetry.proto", reason="opentelemetry-proto (test extra) is not installed")
    receiver = _Receiver()
    env = _env(tmp_path, OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.url,
               OTEL_BSP_SCHEDULE_DELAY="100", OTEL_SERVICE_NAME="warden-test")
    server = Served(env, free_port(), workers=1)
    try:
        cid, secret = _setup({k: v for k, v in env.items() if not k.startswith("OTEL_")})
        assert wait_until(lambda: server.token(cid, secret).status_code == 200)
        trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        response = httpx.post(f"{server.url}/oauth2/token", data={"grant_type": "client_credentials"},
                              auth=(cid, secret), headers={"traceparent": f"00-{trace_id}-{parent}-01"})
        token = response.json()["access_token"]
        assert server.token(cid, "wrong").status_code == 401
        script = subprocess.run([sys.executable, "-c", _CLIENT_SCRIPT, server.url, cid, secret, receiver.url],
                                env=env, capture_output=True, text=True, timeout=60, check=False)
        assert script.returncode == 0, script.stderr
        app = json.loads(script.stdout)

        def names() -> set[str]:
            return {s["name"] for s in receiver.spans}

        assert wait_until(lambda: {"warden.client.request", "warden.resource.validate"} <= names()
                          and sum(s["trace_id"] == trace_id for s in receiver.spans) >= 4, timeout=20)
    finally:
        server.stop()
        receiver.close()
    spans = receiver.spans
    # the server span continues the incoming traceparent, and the steps are its children
    root = next(s for s in spans if s["trace_id"] == trace_id and s["name"] == "POST token")
    assert root["parent"] == parent and root["service"] == "warden-test"
    children = {s["name"] for s in spans if s["parent"] == root["span_id"]}
    assert {"warden.client_authentication", "warden.policy", "warden.signing"} <= children
    # the failed authentication carries its private reason, not the credentials
    assert any(s["name"] == "warden.client_authentication" and "wrong_secret" in json.dumps(s) for s in spans)
    # warden.client injected traceparent: the server span of its request is a child of the client span
    client_span = next(s for s in spans if s["name"] == "warden.client.request" and
                       s["trace_id"] == app["trace_id"] and "/oauth2/token" in s["attributes"]["url.full"])
    assert any(s["parent"] == client_span["span_id"] and s["name"] == "POST token" for s in spans)
    assert any(s["name"] == "warden.resource.validate" and s["trace_id"] == app["trace_id"] for s in spans)
    # no secret and no token in any attribute, event or status of any span
    haystack = json.dumps(spans)
    for needle in (secret, token, app["token"], token.rsplit(".", 1)[1], app["token"].rsplit(".", 1)[1]):
        assert needle not in haystack
    assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}", haystack)
