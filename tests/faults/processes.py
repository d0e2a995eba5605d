"""What the fault suite runs and breaks: `warden serve` processes (`Node`), a private PostgreSQL
(`PrivatePostgres`, initdb + pg_ctl into a temporary directory on a free loopback port), a TCP
proxy the test controls (`TcpProxy`: latency, blackhole), and a bounded load (`Load`).

Everything listens on 127.0.0.1 and is stopped by the PID this module started; nothing here touches
the shared PostgreSQL or Redis.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from tests.integration.conftest import free_port, wait_until

WARDEN = [sys.executable, "-m", "warden.cli.main"]
SKEWED_WARDEN = [sys.executable, str(Path(__file__).with_name("skewed_warden.py"))]
BUSY_WARDEN = [sys.executable, str(Path(__file__).with_name("busy_warden.py"))]  # SIGUSR1: a busy loop


class Node:
    """One `warden serve` process; its log (stderr) goes to a file the test can read while it runs."""

    def __init__(self, env: dict[str, str], log_dir: Path, *, port: int | None = None, workers: int = 1,
                 command: Sequence[str] = WARDEN, wait: bool = True) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"node-{self.port}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen([*command, "serve", "--port", str(self.port), "--workers", str(workers)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=self._log)
        if wait and not wait_until(self.ready, timeout=40, interval=0.2):
            self.stop()
            raise AssertionError(f"node did not become ready: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text()

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def token(self, cid: str, secret: str, timeout: float = 5.0) -> httpx.Response:
        return httpx.post(f"{self.url}/oauth2/token", data={"grant_type": "client_credentials"},
                          auth=(cid, secret), timeout=timeout)

    def worker_pids(self) -> list[int]:
        """Workers started so far, in order (from the supervisor's log lines)."""
        return [int(pid) for pid in re.findall(r"started worker (\d+)", self.log())]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> int:
        """SIGTERM and wait for the drain; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._log.close()
        return code


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process took the number
        return True
    try:  # a zombie has exited; only its parent has not collected it yet
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def port_free(port: int) -> bool:
    """Whether a server could listen on `port` now (with SO_REUSEADDR, as `warden serve` and every
    server does, so connections left in TIME_WAIT do not count)."""
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def _cannot(reason: str) -> NoReturn:
    """Skip, saying why; in CI (WARDEN_REQUIRE_POSTGRES=1) fail instead, as the shared fixtures do."""
    if os.environ.get("WARDEN_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason + " (WARDEN_REQUIRE_POSTGRES=1)", pytrace=False)
    pytest.skip(reason)


class PrivatePostgres:
    """A PostgreSQL server of the test's own: initdb into a temporary directory, pg_ctl start/stop on a
    free port (as the `postgres` user when running as root, which PostgreSQL refuses). Skips the test,
    with the reason, when the server binaries are not installed."""

    def __init__(self) -> None:
        on_path = shutil.which("pg_ctl")
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or ([on_path] if on_path else [])
        if not found or not os.path.exists(os.path.join(os.path.dirname(found[-1]), "initdb")):
            _cannot("PostgreSQL server binaries (initdb, pg_ctl) are not installed (Debian: postgresql)")
        self.bin = os.path.dirname(found[-1])
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="warden-pg-")
        self.data = os.path.join(self.root, "data")
        self._as: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                _cannot("running as root without runuser: cannot start a private PostgreSQL")
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                _cannot("running as root and there is no postgres user to run a private PostgreSQL as")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        proc = subprocess.run([*self._as, os.path.join(self.bin, tool), *args], capture_output=True, text=True,
                              timeout=60, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed: {proc.stderr[-2000:]}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.root, "log"), "-w", "-t", "30", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off", "start")

    def stop(self) -> None:
        """Immediate shutdown: every connection is cut, as when the database host fails."""
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop")

    def create_database(self) -> str:
        import psycopg

        name = f"w{os.urandom(4).hex()}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name

    def close(self) -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            try:
                self.stop()
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


class TcpProxy:
    """A loopback TCP proxy in front of `upstream_port`, run by an asyncio loop in a thread. `latency`
    delays every chunk in both directions; `blackhole` holds every byte (and every new connection)
    until it is cleared, like a network partition that drops packets rather than refusing them."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.latency = 0.0
        self.blackhole = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        assert self._started.wait(10), "proxy did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._started.set()
        self._loop.run_forever()

    async def _hold(self) -> None:
        while self.blackhole:
            await asyncio.sleep(0.02)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._connect_and_pump(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _connect_and_pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._hold()
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.latency:
                    await asyncio.sleep(self.latency)
                await self._hold()
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def _shutdown(self) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def close(self) -> None:
        self.blackhole = False
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class Outcome:
    at: float  # time.monotonic() when the request was sent
    node: str  # the URL that answered (or failed)
    status: int | None  # None: a transport error
    error: str = ""  # the exception's class name, or the OAuth error code
    retry_after: str | None = None


@dataclass
class Load:
    """`threads` clients posting token requests until `stop()` or until `budget` requests in all, each
    recording an `Outcome`. A client spreads its requests over `nodes` in turn; with `failover` a
    refused connection (a node that is down) moves the same request on to the next node, as a load
    balancer does, so only requests a node accepted and then lost are failures."""

    nodes: Sequence[str]
    cid: str
    secret: str
    threads: int = 4
    budget: int = 3000
    failover: bool = False
    pause: float = 0.0
    extract: Callable[[httpx.Response], None] | None = None  # sees every 200 (e.g. to validate the token)
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self._workers = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.threads)]
        for worker in self._workers:
            worker.start()

    def _take(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self._sent >= self.budget:
                return False
            self._sent += 1
            return True

    def _client(self, index: int) -> None:
        turn = index
        with httpx.Client(timeout=5) as http:
            while self._take():
                for attempt in range(len(self.nodes) if self.failover else 1):
                    node = self.nodes[turn % len(self.nodes)]
                    turn += 1
                    outcome = self._one(http, node)
                    if not (self.failover and outcome.error == "ConnectError" and attempt + 1 < len(self.nodes)):
                        break
                with self._lock:
                    self.outcomes.append(outcome)
                if self.pause:
                    time.sleep(self.pause)

    def _one(self, http: httpx.Client, node: str) -> Outcome:
        at = time.monotonic()
        try:
            resp = http.post(f"{node}/oauth2/token", data={"grant_type": "client_credentials"},
                             auth=(self.cid, self.secret))
        except httpx.HTTPError as exc:
            return Outcome(at, node, None, type(exc).__name__)
        error = ""
        if resp.status_code != 200:
            try:
                error = str(resp.json().get("error", ""))
            except ValueError:
                error = "not json"
        elif self.extract is not None:
            self.extract(resp)
        return Outcome(at, node, resp.status_code, error, resp.headers.get("retry-after"))

    def wait_for(self, count: int, timeout: float = 20.0) -> bool:
        """Wait until `count` more outcomes than now have been recorded."""
        target = len(self.outcomes) + count
        return wait_until(lambda: len(self.outcomes) >= target or not any(w.is_alive() for w in self._workers),
                          timeout=timeout)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)
        return list(self.outcomes)
