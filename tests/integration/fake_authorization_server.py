"""A small stand-in authorization server on 127.0.0.1 for the client-library and agent tests.

It serves RFC 8414 metadata and a client credentials token endpoint that checks a client id
and secret (HTTP Basic or form fields), and records what it was sent. Knobs let a test make
it slow, fail in a scripted order, fail every request, tamper with its metadata or rotate
the accepted secret. The real Warden server is tested by the suites that start it; this one
exists so the libraries can be driven into states a correct server never reaches.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

__all__ = ["FakeAuthorizationServer", "QuietServer"]


class QuietServer(ThreadingHTTPServer):
    """A threaded test server that does not print tracebacks when a client hangs up early."""

    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _numbered(number: int, secret: str) -> str:
    return f"at-{number}"


class FakeAuthorizationServer:
    """Metadata and a token endpoint; records each token request's form and presented credentials.

    Attributes a test may set:
      delay:           seconds to wait before answering a token request
      failures:        (status, headers) answers given, in order, before any token is issued
      status:          when set, every token request gets this error status (and Retry-After: 1)
      metadata:        replaces the whole metadata document
      metadata_issuer: when set, the metadata names this issuer (tampering)
    """

    def __init__(self, client_id: str = "orders", client_secret: str = "wsec_orders",
                 token_value: Callable[[int, str], str] = _numbered) -> None:
        self.client_id = client_id
        self.secret = client_secret
        self.accepted = {client_secret}
        self.delay = 0.0
        self.failures: list[tuple[int, dict[str, str]]] = []
        self.status: int | None = None
        self.metadata: dict[str, object] | None = None
        self.metadata_issuer: str | None = None
        self.forms: list[dict[str, str]] = []  # each token request's form, as sent
        self.presented: list[tuple[str, str]] = []  # each token request's (client_id, secret)
        self._token_value = token_value
        self._lock = threading.Lock()
        self._server = QuietServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def client_secret(self) -> str:
        return self.secret

    @property
    def token_requests(self) -> int:
        return len(self.forms)

    def rotate_secret(self, new: str) -> None:
        self.secret = new
        self.accepted = {new}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _metadata(self) -> dict[str, object]:
        if self.metadata is not None:
            return self.metadata
        return {"issuer": self.metadata_issuer or self.issuer, "token_endpoint": f"{self.issuer}/oauth2/token"}

    def _answer(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, object], dict[str, str]]:
        _, _, encoded = authorization.partition(" ")
        if encoded:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        with self._lock:
            self.forms.append(form)
            self.presented.append((client_id, secret))
            number = len(self.forms)
            failure = self.failures.pop(0) if self.failures else None
        time.sleep(self.delay)
        if failure is not None:
            return failure[0], {"error": "temporarily_unavailable"}, failure[1]
        if self.status is not None:
            return self.status, {"error": "temporarily_unavailable"}, {"Retry-After": "1"}
        if "client_assertion" in form:
            return 400, {"error": "invalid_client"}, {}  # assertions are the real server's tests' business
        if client_id != self.client_id or secret not in self.accepted:
            return 401, {"error": "invalid_client"}, {"WWW-Authenticate": "Basic"}
        body: dict[str, object] = {"access_token": self._token_value(number, secret), "token_type": "Bearer",
                                   "expires_in": 300}
        if "scope" in form:
            body["scope"] = form["scope"]
        return 200, body, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, document: object, headers: dict[str, str]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/.well-known/oauth-authorization-server":
                    return self._send(200, fake._metadata(), {})
                self._send(404, {}, {})

            def do_POST(self) -> None:
                form = dict(parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                self._send(*fake._answer(form, self.headers.get("Authorization", "")))

        return Handler
