"""Thundering-herd benchmark: N concurrent callers on a cold token cache, and how many token requests result.

Runs the client library's `ClientCredentials` with N callers that start together
(threads released by a barrier, then asyncio tasks gathered at once) against a
token endpoint that answers after a delay, so every caller arrives while the
first request is still in flight. Single flight means the server should see
exactly one token request per mode.

By default it serves the endpoint itself (a minimal RFC 8414 metadata document
and a client credentials token endpoint on 127.0.0.1). With `--issuer` it
targets a real authorization server instead; then only the requests the client
sent can be counted.

    .venv/bin/python bench/herd.py                       # local endpoint, 1,000 callers
    .venv/bin/python bench/herd.py --callers 5000 --delay 0.5
    .venv/bin/python bench/herd.py --quick               # as `bench/run.py --quick` runs it
    WARDEN_CLIENT_SECRET=... .venv/bin/python bench/herd.py --issuer http://127.0.0.1:8080 \\
        --client-id ID --audience https://api.example --scope read

Prints a table and writes JSON to bench/results/herd.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))  # run from a checkout even without an editable install

import httpx

from warden.client import ClientCredentials, Secret, TokenError

LOCAL_CLIENT_ID = "bench-client"
LOCAL_SECRET = "bench-secret"


class LocalTokenEndpoint:
    """RFC 8414 metadata plus a token endpoint that counts requests and answers after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.token_requests = 0
        self.metadata_requests = 0
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                with endpoint._lock:
                    endpoint.metadata_requests += 1
                self._send(
                    200, {"issuer": endpoint.issuer, "token_endpoint": f"{endpoint.issuer}/oauth2/token"}
                )

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with endpoint._lock:
                    endpoint.token_requests += 1
                    number = endpoint.token_requests
                time.sleep(endpoint.delay)
                expected = base64.b64encode(f"{LOCAL_CLIENT_ID}:{LOCAL_SECRET}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    return self._send(401, {"error": "invalid_client"})
                self._send(
                    200, {"access_token": f"bench-token-{number}", "token_type": "Bearer", "expires_in": 300}
                )

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 1024
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def reset(self) -> None:
        with self._lock:
            self.token_requests = 0
            self.metadata_requests = 0


@dataclass
class Result:
    mode: str
    callers: int
    succeeded: int
    failed: int
    token_requests_received: int | None  # counted by the local endpoint; None against a real server
    token_requests_sent: int  # counted by the client library (metadata excluded)
    wall_seconds: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def _summarise(
    mode: str,
    callers: int,
    latencies: list[float],
    failures: int,
    cc: ClientCredentials,
    received: int | None,
    wall: float,
    discovery: int,
) -> Result:
    stats = cc.stats()
    return Result(
        mode=mode,
        callers=callers,
        succeeded=len(latencies),
        failed=failures,
        token_requests_received=received,
        token_requests_sent=stats.requests - discovery,
        wall_seconds=round(wall, 4),
        latency_p50_ms=round(_percentile(latencies, 0.50) * 1000, 2),
        latency_p99_ms=round(_percentile(latencies, 0.99) * 1000, 2),
        latency_max_ms=round(max(latencies, default=0.0) * 1000, 2),
    )


def run_threads(
    make_source: Callable[[], ClientCredentials], callers: int
) -> tuple[ClientCredentials, list[float], int, float]:
    cc = make_source()
    barrier = threading.Barrier(callers + 1)
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()

    def call() -> None:
        nonlocal failures
        barrier.wait()
        start = time.perf_counter()
        try:
            cc.get_token()
        except TokenError:
            with lock:
                failures += 1
            return
        with lock:
            latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    barrier.wait()
    for thread in threads:
        thread.join()
    return cc, latencies, failures, time.perf_counter() - start


def run_tasks(
    make_source: Callable[[], ClientCredentials], callers: int
) -> tuple[ClientCredentials, list[float], int, float]:
    cc = make_source()

    async def scenario() -> tuple[list[float], int, float]:
        async def call() -> float | None:
            start = time.perf_counter()
            try:
                await cc.aget_token()
            except TokenError:
                return None
            return time.perf_counter() - start

        start = time.perf_counter()
        outcomes = await asyncio.gather(*(call() for _ in range(callers)))
        latencies = [o for o in outcomes if o is not None]
        return latencies, callers - len(latencies), time.perf_counter() - start

    latencies, failures, wall = asyncio.run(scenario())
    return cc, latencies, failures, wall


class RealWarden:
    """`warden serve` on a free port with a fresh data directory, an API and a client; the number of
    token requests it answered comes from its own Prometheus counter."""

    def __init__(self) -> None:
        import re
        import subprocess
        import sys
        import tempfile

        sys.path.insert(0, str(ROOT))
        from _tools import VENV_BIN, Process, free_port

        self._re = re
        data = tempfile.mkdtemp(prefix="warden-herd-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
        env.update(WARDEN_DATA_DIR=data, WARDEN_AUDIT_SINK="off", WARDEN_LOG_LEVEL="warning")
        warden = str(VENV_BIN / "warden")
        self.audience = "https://api.example"
        subprocess.run([warden, "apis", "create", self.audience, "--scopes", "read"], env=env, check=True,
                       capture_output=True)
        created = json.loads(subprocess.run([warden, "clients", "create", "herd", "--grant", f"{self.audience}=read",
                                             "--json"], env=env, check=True, capture_output=True, text=True).stdout)
        self.client_id, self.secret = created["client_id"], created["client_secret"]
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._proc = Process([warden, "serve", "--port", str(port)], f"{self.url}/readyz", env)

    def token_requests(self) -> int:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return int(sum(float(v) for v in self._re.findall(r'^warden_token_requests_total\{[^}]*\} (\S+)$', text,
                                                              self._re.M)))

    def stop(self) -> None:
        self._proc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--issuer", help="a real authorization server; default: a local endpoint started here"
    )
    parser.add_argument("--client-id", default=LOCAL_CLIENT_ID)
    parser.add_argument("--client-secret-file", help="default: WARDEN_CLIENT_SECRET (with --issuer)")
    parser.add_argument("--audience", default="https://api.example")
    parser.add_argument("--scope", default=None)
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.2, help="local endpoint answer delay in seconds")
    parser.add_argument("--output", type=Path, default=ROOT / "results" / "herd.json")
    parser.add_argument("--quick", action="store_true", help="for `bench/run.py --quick`: a 0.05 s delay")
    parser.add_argument("--warden", action="store_true",
                        help="start a real `warden serve` and count token requests at the server (its /metrics)")
    args = parser.parse_args(argv)
    warden = RealWarden() if args.warden else None
    if warden is not None:
        args.issuer, args.client_id, args.audience = warden.url, warden.client_id, warden.audience
        os.environ["WARDEN_CLIENT_SECRET"] = warden.secret
    if args.quick:
        args.delay = min(args.delay, 0.05)  # still long enough for every caller to arrive mid-flight

    local = None if args.issuer else LocalTokenEndpoint(args.delay)
    if local is not None:
        local.__enter__()
    issuer = args.issuer or (local.issuer if local else "")
    if args.issuer:
        secret = Secret.from_file(args.client_secret_file) if args.client_secret_file else Secret.from_env()
        if secret is None:
            parser.error("--issuer needs --client-secret-file or WARDEN_CLIENT_SECRET")
    else:
        secret = Secret(LOCAL_SECRET)

    def make_source() -> ClientCredentials:
        return ClientCredentials(
            issuer,
            client_id=args.client_id,
            client_secret=secret,
            audience=args.audience,
            scope=args.scope,
            timeout=30,
        )

    results: list[Result] = []
    counted = warden.token_requests() if warden is not None else 0
    try:
        for mode, runner in (("threads", run_threads), ("asyncio", run_tasks)):
            if local is not None:
                local.reset()
            cc, latencies, failures, wall = runner(make_source, args.callers)
            # Each cold source discovers the token endpoint first (RFC 8414); that GET is not a token request.
            discovery = local.metadata_requests if local is not None else int(cc.token_endpoint is not None)
            received = local.token_requests if local is not None else None
            if warden is not None:
                received = warden.token_requests() - counted
                counted += received
            results.append(_summarise(mode, args.callers, latencies, failures, cc, received, wall, discovery))
    finally:
        if local is not None:
            local.__exit__(None, None, None)
        if warden is not None:
            warden.stop()

    header = (
        f"{'mode':<8} {'callers':>7} {'ok':>6} {'failed':>6} {'requests received':>17} "
        f"{'requests sent':>13} {'wall s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    )
    print(f"herd benchmark: {args.callers} concurrent callers on a cold cache, issuer {issuer}")
    print(header)
    print("-" * len(header))
    for r in results:
        shown = "n/a" if r.token_requests_received is None else str(r.token_requests_received)
        print(
            f"{r.mode:<8} {r.callers:>7} {r.succeeded:>6} {r.failed:>6} {shown:>17} "
            f"{r.token_requests_sent:>13} {r.wall_seconds:>7.3f} {r.latency_p50_ms:>7.1f} "
            f"{r.latency_p99_ms:>7.1f} {r.latency_max_ms:>7.1f}"
        )

    document = {
        "benchmark": "herd",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "issuer": "local" if local is not None else ("warden serve" if warden is not None else issuer),
        "callers": args.callers,
        "endpoint_delay_s": args.delay if local is not None else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "results": [asdict(r) for r in results],
        "single_flight_held": all(
            (r.token_requests_received if r.token_requests_received is not None else r.token_requests_sent)
            == 1
            and r.failed == 0
            for r in results
        ),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.output.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(temporary, args.output)
    print(f"single flight held: {document['single_flight_held']}; results written to {args.output}")
    return 0 if document["single_flight_held"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
