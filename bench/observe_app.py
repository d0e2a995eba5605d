"""The applications around a Warden in the observability round trip and the game day.

    python bench/observe_app.py resource --issuer URL --audience API --port P
        a resource server: GET /orders validates the bearer token with warden.resource
        (scope "read"), /metrics exposes the validator's metrics (prometheus_client registry).
    python bench/observe_app.py client --issuer URL --client-id ID --audience API --api URL --port P
        a workload: gets tokens with warden.client (secret in WARDEN_CLIENT_SECRET), calls the
        resource server with them at --rate calls/s, and now and then with a forged or an
        under-scoped token; /metrics exposes the client library's metrics.

Both only bind 127.0.0.1 and stop on SIGTERM. The libraries count on the registry through
`metrics=ResourceMetrics(registry)` / `metrics=ClientMetrics(registry)`.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, generate_latest

from warden.client import ClientCredentials, TokenError
from warden.resource import InsufficientScope, InvalidToken, Validator

_METRICS = {"Validator": ("warden.resource.metrics", "ResourceMetrics"),
            "ClientCredentials": ("warden.client.metrics", "ClientMetrics")}


def library_metrics(factory: Any, registry: CollectorRegistry) -> Any:
    """The library's metrics object on `registry`, or None for a version of it without metrics."""
    if "metrics" not in inspect.signature(factory).parameters:
        return None
    module, name = _METRICS[factory.__name__]
    return getattr(importlib.import_module(module), name)(registry)


def with_registry(factory: Any, registry: CollectorRegistry, **kwargs: Any) -> Any:
    """`factory(**kwargs, metrics=<its metrics class>(registry))` when the library takes metrics."""
    metrics = library_metrics(factory, registry)
    return factory(**kwargs) if metrics is None else factory(**kwargs, metrics=metrics)


def serve(port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def metrics_handler(registry: CollectorRegistry, route: Any = None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/metrics":
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4")
            elif self.path == "/healthz":
                body = b"ok"
                self.send_response(200)
            elif route is not None:
                status, body = route(self.headers.get("authorization", ""), self.path)
                self.send_response(status)
            else:
                status, body = 404, b""
                self.send_response(404)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def resource(args: argparse.Namespace) -> None:
    registry = CollectorRegistry()
    validator = with_registry(Validator, registry, issuer=args.issuer, audience=args.audience,
                              jwks_uri=f"{args.issuer}/oauth2/jwks", refresh_cooldown=2.0)

    def route(authorization: str, path: str) -> tuple[int, bytes]:
        if not path.startswith("/orders"):
            return 404, b""
        _, _, token = authorization.partition(" ")
        try:
            validator.validate(token, scopes=["write" if path.endswith("/write") else "read"])
        except InsufficientScope:
            return 403, b'{"error":"insufficient_scope"}'
        except InvalidToken:
            return 401, b'{"error":"invalid_token"}'
        return 200, b'{"orders":[]}'

    serve(args.port, metrics_handler(registry, route))
    wait_for_term()


def client(args: argparse.Namespace) -> None:
    registry = CollectorRegistry()
    metrics = library_metrics(ClientCredentials, registry)
    common: dict[str, Any] = {"issuer": args.issuer, "client_id": args.client_id, "audience": args.audience,
                              "scope": "read", "token_endpoint": f"{args.issuer}/oauth2/token"}
    if metrics is not None:
        common["metrics"] = metrics
    credentials = ClientCredentials(**common, client_secret=os.environ["WARDEN_CLIENT_SECRET"])
    stale = ClientCredentials(**common, client_secret="wsec_stale-copy-of-an-old-secret")  # invalid_client
    serve(args.port, metrics_handler(registry))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    http = httpx.Client(timeout=5)
    n = 0
    while not stop.is_set():
        n += 1
        if n % 50 == 0:
            try:
                stale.get_token()
            except TokenError:
                pass
        try:
            token = credentials.get_token()
            if n % 17 == 0:
                token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")  # forged signature: 401
            path = "/orders/write" if n % 23 == 0 else "/orders"  # not granted "write": 403
            http.get(f"{args.api}{path}", headers={"authorization": f"Bearer {token}"})
        except (TokenError, httpx.HTTPError) as exc:  # the game day takes the server down on purpose
            print(f"client: {type(exc).__name__}: {exc}", file=sys.stderr)
        stop.wait(1 / args.rate)


def wait_for_term() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    time.sleep(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("resource", "client"):
        p = sub.add_parser(mode)
        p.add_argument("--issuer", required=True)
        p.add_argument("--audience", required=True)
        p.add_argument("--port", type=int, required=True)
        if mode == "client":
            p.add_argument("--client-id", required=True)
            p.add_argument("--api", required=True)
            p.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    (resource if args.mode == "resource" else client)(args)


if __name__ == "__main__":
    main()
