"""A real Warden server on a free port, in this process, on SQLite and (when reachable) PostgreSQL.

The server runs uvicorn in a thread with the production application; tests talk
HTTP to it with real clients. Administrative changes go through a *separate*
store instance, as the CLI would, so every test also exercises the change-log
path by which running servers learn about changes.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from tests.integration.h1_harness import ThreadedH1

from warden.core.clock import SystemClock
from warden.server.app import WardenApp, create_app
from warden.server.worker import limits_for
from warden.services.admin import Admin, GrantSpec
from warden.services.audit import AuditSink, open_audit_sink
from warden.services.kek import load_kek
from warden.settings import Settings, load_settings
from warden.storage.contract import Store
from warden.storage.engine import open_store

_POSTGRES = pytest.param("postgresql", marks=pytest.mark.postgres)

with warnings.catch_warnings():
    # Authlib's httpx integration warns once, at import, that it prefers the `httpx2` package; and it
    # installs an "always" filter for its warnings. Import it here so neither leaks into the tests.
    import authlib.deprecate

    warnings.simplefilter("ignore")
    import authlib.integrations.httpx_client  # noqa: F401


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@dataclass
class LiveServer:
    url: str
    app: WardenApp
    settings: Settings
    admin: Admin
    audit_path: Path
    store_factory: Callable[[], Store]
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    @property
    def issuer(self) -> str:
        return self.settings.issuer_url

    def api(self, scopes: str = "read write", ttl: int = 900, alg: str = "ES256") -> str:
        identifier = f"https://api-{secrets.token_hex(4)}.example"
        self.admin.save_api(identifier, scopes.split(), ttl=ttl, alg=alg)
        return identifier

    def client(self, grants: dict[str, str], **options: Any) -> tuple[str, str]:
        """Register a client; wait until the server knows it; return (client_id, secret)."""
        specs = [GrantSpec(api, tuple(scopes.split())) for api, scopes in grants.items()]
        client, secret = self.admin.create_client(options.pop("name", "test client"), specs, **options)
        self.wait_for_client(client.client_id)
        assert secret is not None
        return client.client_id, secret.secret

    def client_when_ready(self, grants: dict[str, str], **options: Any) -> tuple[str, str]:
        assert wait_until(lambda: self.app.runtime.ready, timeout=10), "server never became ready"
        return self.client(grants, **options)

    def wait_for_client(self, client_id: str) -> None:
        assert wait_until(lambda: client_id in self.app.runtime.registry.clients), "change not propagated"

    def sync(self) -> None:
        """Wait until the server has applied every change logged so far."""
        latest = self.admin.store.latest_change()
        assert wait_until(lambda: self.app.runtime.registry.seq >= latest), "change not propagated"

    def token(self, client_id: str, secret: str, **data: Any) -> httpx.Response:
        data.setdefault("grant_type", "client_credentials")
        return self.http.post(f"{self.url}/oauth2/token", data=data, auth=(client_id, secret))

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(f"{self.url}{path}", **kwargs)

    def audit_events(self) -> list[dict[str, Any]]:
        self.app.runtime.audit.flush()
        self.admin_audit.flush()
        text = self.audit_path.read_text() if self.audit_path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line]

    admin_audit: AuditSink = field(default_factory=AuditSink)


def _store_factory(kind: str, request: pytest.FixtureRequest, data_dir: str) -> Callable[[], Store]:
    if kind == "sqlite":
        return lambda: open_store(None, data_dir)
    url: str = request.getfixturevalue("postgres_url")
    schema: str = request.getfixturevalue("make_postgres_schema")()
    return lambda: open_store(url, data_dir, schema=schema)


@pytest.fixture
def start_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start servers with chosen settings (as `load_settings` overrides) on the given backend."""
    started: list[tuple[uvicorn.Server | ThreadedH1, threading.Thread | None, LiveServer, Store]] = []

    def start(backend: str = "sqlite", wrap_store: Callable[[Store], Store] | None = None,
              wait_ready: bool = True, stack: str = "asgi", **overrides: Any) -> LiveServer:
        """`stack` is "asgi" (the application under uvicorn) or "h1" (Warden's own server, as `warden serve`)."""
        port = free_port()
        data_dir = tmp_path / f"data-{port}"
        audit_path = tmp_path / f"audit-{port}.jsonl"
        overrides.setdefault("limits.failed_auth_per_minute", 100000)
        settings = load_settings(environ={}, data_dir=str(data_dir), registry_poll_interval=0.05,
                                 **{"server.port": port, "audit.sink": str(audit_path), **overrides})
        factory = _store_factory(backend, request, str(data_dir))
        server_factory = (lambda: wrap_store(factory())) if wrap_store else factory
        app = create_app(settings, server_factory)
        admin_store = factory()
        admin_store.migrate()
        admin_audit = open_audit_sink(str(audit_path))
        admin = Admin(admin_store, load_kek(None, str(data_dir)), SystemClock(), admin_audit, actor="test")
        server: uvicorn.Server | ThreadedH1
        thread: threading.Thread | None = None
        if stack == "h1":
            server = ThreadedH1(app, limits_for(settings, app.max_body_bytes), port=port)
        else:
            # proxy_headers off: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 itself,
            # ahead of Warden's own `server.trusted_proxies`
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                   lifespan="on", access_log=False, proxy_headers=False))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            assert wait_until(lambda: server.started, timeout=20), "server did not start"
        live = LiveServer(f"http://127.0.0.1:{port}", app, settings, admin, audit_path, factory,
                          admin_audit=admin_audit)
        if wait_ready:
            assert wait_until(lambda: app.runtime.ready, timeout=20)
        started.append((server, thread, live, admin_store))
        return live

    yield start
    for server, thread, live, admin_store in started:
        if isinstance(server, ThreadedH1):
            server.stop()
        else:
            server.should_exit = True
            assert thread is not None
            thread.join(timeout=15)
        live.http.close()
        live.admin_audit.close()
        admin_store.close()


@pytest.fixture(params=["sqlite", "sqlite-h1", _POSTGRES])
def server(request: pytest.FixtureRequest, start_server: Callable[..., LiveServer]) -> LiveServer:
    """The default server, once per backend, and on SQLite once more behind Warden's own HTTP/1.1
    server (`warden serve`), so both ways of serving the one application are held to the same tests."""
    backend, _, stack = request.param.partition("-")
    return start_server(backend, stack=stack or "asgi")


@pytest.fixture
def sqlite_server(start_server: Callable[..., LiveServer]) -> LiveServer:
    return start_server("sqlite")


class JsonServer:
    """A real HTTP server on a free port answering GETs with JSON: `route(path, headers)` gives the
    status and body. Shared by the stand-ins for clients' `jwks_uri`s, issuers and CI platforms."""

    def __init__(self, route: Callable[[str, Any], tuple[int, Any]]) -> None:
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = route(self.path, self.headers)
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class JsonDocuments(JsonServer):
    """JSON documents by path, counting requests: a client's `jwks_uri` or a workload-identity
    issuer (discovery + JWKS)."""

    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        self.hits: dict[str, int] = {}
        super().__init__(self._route)

    def _route(self, path: str, headers: Any) -> tuple[int, Any]:
        self.hits[path] = self.hits.get(path, 0) + 1
        body = self.documents.get(path)
        return (404, None) if body is None else (200, body)


@pytest.fixture
def json_documents() -> Iterator[JsonDocuments]:
    docs = JsonDocuments()
    yield docs
    docs.close()
