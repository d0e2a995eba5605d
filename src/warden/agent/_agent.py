"""The token agent: serves tokens of the credentials it holds to processes on the same machine.

Routes (GET only, see `_http` for the hardening):

- `/token?audience=...&scope=...`: `{"access_token", "token_type", "expires_in"}` for the
  credential configured for that audience whose scope covers the requested scope
  (default: the configured scope; with a single credential, `audience` may be
  omitted). Answered from cache; on a cold cache the caller waits for the one
  shared fetch, at most `token_wait` seconds, then gets 503 (F15).
- `/healthz` (the process is serving), `/readyz` (every credential holds a usable token),
  `/metrics` (Prometheus text: cache hits and misses, token requests, renewals,
  failures, credential reloads, time to expiry of each cached token).

Each credential keeps its configured token renewed ahead of expiry (the client
library's jittered refresh), writes it to its `token_file` when configured, and
is rebuilt when its secret or key file rotates. A token is served at most until
`expires_in` minus the library's leeway; after a client is disabled or its
grant reduced, tokens already issued are served until then at the latest (T69).
Renewal and file watching live in `_renewal`; the process entry point in `_main`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from warden.agent._credential import ManagedCredential, Material, build_source
from warden.agent._http import (
    MAX_HEAD_BYTES,
    HTTPProblem,
    HTTPRequest,
    is_allowed_host,
    is_browser_request,
    parse_request_head,
    render_response,
)
from warden.agent._metrics import CONTENT_TYPE, ClientCounters, render_agent_metrics
from warden.agent._renewal import keep_fresh, watch_files
from warden.agent.config import AgentConfig, CredentialConfig, TCPListen, UnixListen
from warden.client import CacheKey, ClientCredentials, RefreshPolicy, RetryPolicy, TokenError
from warden.errors import ConfigError
from warden.protocol.errors import HeaderFieldsTooLarge, OAuthError, RequestTimeout, TemporarilyUnavailable

__all__ = ["Agent"]

logger = logging.getLogger("warden.agent")

HEAD_TIMEOUT = 5.0
MAX_CONNECTIONS = 256
_JSON = "application/json"
_ROUTES = ("/token", "/healthz", "/readyz", "/metrics")
_TOKEN_PARAMS = frozenset({"audience", "scope"})

Response = tuple[int, bytes, str, tuple[tuple[str, str], ...]]


def _json(status: int, document: dict[str, Any], *extra: tuple[str, str]) -> Response:
    return status, json.dumps(document, separators=(",", ":")).encode("utf-8"), _JSON, tuple(extra)


def _error(status: int, error: str, description: str, *extra: tuple[str, str]) -> Response:
    return _json(status, {"error": error, "error_description": description}, *extra)


def _refusal(error: OAuthError) -> Response:
    """A framing refusal, as the error class `warden serve`'s HTTP/1.1 server raises for it."""
    return _error(error.status, error.error, error.description or error.error)


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not report it as lost


def _bind_unix_socket(path: Path, mode: int) -> socket.socket:
    """Bind a unix socket created with `mode` (never wider at any moment); replace a stale one."""
    with contextlib.suppress(FileNotFoundError):
        info = os.lstat(path)
        if not stat.S_ISSOCK(info.st_mode):
            raise ConfigError(f"agent config: listen path {str(path)!r} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)  # left behind by an agent that is gone
        else:
            raise ConfigError(f"agent config: another process is listening on {str(path)!r}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        previous = os.umask(0o177)  # the socket file is born 0600; umask is per process, set only at startup
        try:
            sock.bind(str(path))
        finally:
            os.umask(previous)
        os.chmod(path, mode)
    except BaseException:
        sock.close()
        raise
    return sock


class Agent:
    """The agent's server and background work; use as `async with Agent(config) as agent:`.

    Args:
        config: the validated configuration.
        poll_interval: seconds between checks of the credential files.
        token_wait: the longest a `/token` caller waits for a fetch before a 503.
        retry, refresh: policies handed to the client library (defaults: the library's).
        source_factory: builds the token source of a credential (tests inject one).

    Raises (from `start`):
        ConfigError: a credential file cannot be read, or the socket path is in use.
        OSError: the address cannot be bound.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        poll_interval: float = 1.0,
        token_wait: float = 10.0,
        retry: RetryPolicy | None = None,
        refresh: RefreshPolicy | None = None,
        source_factory: Callable[[CredentialConfig, Material], ClientCredentials] | None = None,
    ) -> None:
        self.config = config
        self._poll_interval = poll_interval
        self._token_wait = token_wait
        self.client_counters: dict[str, ClientCounters] = {}
        self._factory = source_factory or (
            lambda cfg, material: build_source(cfg, material, retry=retry, refresh=refresh,
                                               metrics=self.client_counters.setdefault(cfg.name, ClientCounters()))
        )
        self.credentials: tuple[ManagedCredential, ...] = ()
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._socket_path: Path | None = None
        self._socket_inode: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._wake: dict[str, asyncio.Event] = {}
        self._http_requests: Counter[tuple[str, int]] = Counter()

    @property
    def address(self) -> str:
        """`http://host:port` for TCP, `unix:/path` for a unix socket."""
        listen = self.config.listen
        if isinstance(listen, UnixListen):
            return f"unix:{listen.path}"
        host = f"[{listen.host}]" if ":" in listen.host else listen.host
        return f"http://{host}:{self._port if self._port is not None else listen.port}"

    async def start(self) -> None:
        self.credentials = tuple(ManagedCredential(cfg, self._factory) for cfg in self.config.credentials)
        listen = self.config.listen
        if isinstance(listen, TCPListen):
            self._server = await asyncio.start_server(
                self._on_connection, listen.host, listen.port, limit=MAX_HEAD_BYTES
            )
            self._port = int(self._server.sockets[0].getsockname()[1])
        else:
            sock = _bind_unix_socket(listen.path, self.config.socket_mode)
            self._socket_path = listen.path
            self._socket_inode = os.stat(listen.path).st_ino
            self._server = await asyncio.start_unix_server(
                self._on_connection, sock=sock, limit=MAX_HEAD_BYTES
            )
        for cred in self.credentials:
            self._wake[cred.name] = asyncio.Event()
            task = keep_fresh(cred, self._wake[cred.name], self._poll_interval)
            self._tasks.append(asyncio.create_task(task, name=f"warden-agent-{cred.name}"))
        watcher = watch_files(self.credentials, self._wake, self._poll_interval)
        self._tasks.append(asyncio.create_task(watcher, name="warden-agent-files"))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        pending = [*self._tasks, *self._background]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks.clear()
        self._background.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(self._socket_path).st_ino == self._socket_inode:
                    os.unlink(self._socket_path)
            self._socket_path = None

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- background work ---------------------------------------------------------------------

    # -- HTTP --------------------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        path = "other"
        try:
            if len(self._writers) > MAX_CONNECTIONS:
                response = _refusal(TemporarilyUnavailable("too many connections", reason="too_many_connections"))
            else:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
                    request = parse_request_head(head)
                    path = request.path if request.path in _ROUTES else "other"
                    response = await self._route(request)
                except asyncio.IncompleteReadError:
                    return  # the client went away
                except asyncio.LimitOverrunError:
                    response = _refusal(HeaderFieldsTooLarge("request head too large", reason="headers_too_large"))
                except TimeoutError:
                    response = _refusal(RequestTimeout("request head not received in time", reason="timeout"))
                except HTTPProblem as problem:
                    response = _error(problem.status, "invalid_request", problem.message)
            status, body, content_type, extra = response
            self._http_requests[(path, status)] += 1
            writer.write(render_response(status, body, content_type, extra))
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _route(self, request: HTTPRequest) -> Response:
        if self._port is not None and not is_allowed_host(request.headers.get("host"), port=self._port):
            return _error(403, "forbidden", "Host must name this machine's loopback address")  # T66
        if is_browser_request(request.headers):
            return _error(403, "forbidden", "browser requests are not served")
        if request.method != "GET":
            return _error(405, "invalid_request", "only GET is supported", ("Allow", "GET"))
        if request.path == "/token":
            return await self._token(request)
        if request.path == "/healthz":
            return _json(200, {"status": "ok"})
        if request.path == "/readyz":
            waiting = [c.name for c in self.credentials if not c.source.has_token()]
            return (
                _json(503, {"status": "not_ready", "waiting": waiting})
                if waiting
                else _json(200, {"status": "ready"})
            )
        if request.path == "/metrics":
            return 200, self.render_metrics().encode("utf-8"), CONTENT_TYPE, ()
        return _error(404, "not_found", "no such endpoint")

    def _select(self, audience: str | None, scope: str | None) -> tuple[ManagedCredential, CacheKey] | None:
        candidates = self.credentials
        if audience is None and len(candidates) > 1:
            candidates = tuple(c for c in candidates if c.config.audience is None)
        for cred in candidates:
            key = cred.match(audience, scope)
            if key is not None:
                return cred, key
        return None

    async def _token(self, request: HTTPRequest) -> Response:
        unknown = set(request.query) - _TOKEN_PARAMS
        if unknown:
            return _error(400, "invalid_request", "unknown query parameter")
        try:
            selected = self._select(request.query.get("audience") or None, request.query.get("scope"))
        except ValueError:
            return _error(400, "invalid_scope", "scope must be space-separated scope tokens")
        if selected is None:
            return _error(404, "invalid_target", "no credential is configured for this audience and scope")
        cred, key = selected
        source = cred.source
        token = source.peek_access_token(*key)  # answered from cache; renewal is the background's job
        if token is not None:
            cred.hits += 1
        else:
            cred.misses += 1
            task = asyncio.ensure_future(source.aget_access_token(*key))
            done, _ = await asyncio.wait({task}, timeout=self._token_wait)
            if not done:
                # The fetch goes on and will fill the cache; this caller is told to come back (F15).
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                task.add_done_callback(_consume)
                return _error(503, "temporarily_unavailable", "token not yet available", ("Retry-After", "1"))
            try:
                token = task.result()
            except TokenError as exc:
                extra = (("Retry-After", str(max(1, round(exc.retry_after or 1)))),) if exc.retryable else ()
                return _error(503, exc.error, exc.error_description or "no token available", *extra)
            if cred.source is source:
                cred.remember(key)
        document: dict[str, Any] = {
            "access_token": token.access_token,
            "token_type": token.token_type,
            "expires_in": int(token.expires_in),
        }
        if token.scope is not None:
            document["scope"] = " ".join(token.scope)
        return _json(200, document)

    def render_metrics(self) -> str:
        """The Prometheus text exposition of the agent's counters and gauges."""
        return render_agent_metrics(self.credentials, self._http_requests, self.client_counters)

    def __repr__(self) -> str:
        return (
            f"Agent(listen={str(self.config.listen)!r}, credentials={[c.name for c in self.credentials]!r})"
        )
