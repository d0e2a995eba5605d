"""`warden serve --workers N` as a supervisor you can trust, with real processes: workers do not
outlive a SIGKILLed supervisor (and the port is freed), a worker that stops answering is killed and
replaced, HTTP limits come from settings, and no worker's environment holds the database password."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.faults.processes import BUSY_WARDEN, Node, pid_alive, port_free
from tests.integration.conftest import wait_until
from tests.integration.test_cli_e2e import cli_json

pytestmark = pytest.mark.slow


def _workers(node: Node, count: int) -> list[int]:
    assert wait_until(lambda: len(node.worker_pids()) >= count, timeout=20), node.log()
    return node.worker_pids()


def test_workers_exit_within_5s_of_a_sigkilled_supervisor_and_free_the_port(cli_env: dict[str, str],
                                                                          tmp_path: Path) -> None:
    node = Node(cli_env, tmp_path, workers=2)
    try:
        workers = _workers(node, 2)
        with httpx.Client(timeout=5) as idle:  # a kept-alive connection must not keep a worker alive
            assert idle.get(f"{node.url}/healthz").status_code == 200
            node.kill()  # SIGKILL: the supervisor cannot tell anyone
            assert wait_until(lambda: not any(pid_alive(pid) for pid in workers), timeout=5.0), \
                [pid for pid in workers if pid_alive(pid)]
        assert port_free(node.port)
        # the pipe watch saw it, on top of Linux's parent-death signal
        assert wait_until(lambda: "supervisor" in node.log() and "is gone" in node.log(), timeout=2), node.log()
    finally:
        for pid in node.worker_pids():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        node.stop()


def test_a_stopped_worker_and_a_spinning_worker_are_killed_and_replaced_while_the_others_serve(
        cli_env: dict[str, str], tmp_path: Path) -> None:
    env = dict(cli_env, WARDEN_SERVER_HEARTBEAT_TIMEOUT="3")  # beats every 0.75 s; slack for a busy machine
    node = Node(env, tmp_path, workers=3, command=BUSY_WARDEN)
    hung: list[int] = []
    try:
        cli_json("apis", "create", "https://api.example", "--scopes", "read", env=env)
        created = cli_json("clients", "create", "svc", "--grant", "https://api.example=read", env=env)
        cid, secret = created["client_id"], created["client_secret"]
        assert wait_until(lambda: node.token(cid, secret).status_code == 200, timeout=10)
        stopped, spinning, healthy = _workers(node, 3)[:3]
        assert wait_until(lambda: all(f"worker {pid} serving" in node.log() for pid in (stopped, spinning)),
                          timeout=20)
        hung = [stopped, spinning]
        os.kill(stopped, signal.SIGSTOP)  # alive, but its event loop never turns again
        os.kill(spinning, signal.SIGUSR1)  # a busy loop on the event loop's thread
        assert wait_until(lambda: len(node.worker_pids()) >= 5, timeout=20), node.log()
        assert wait_until(lambda: not pid_alive(stopped) and not pid_alive(spinning), timeout=10)
        hung = []
        for pid in (stopped, spinning):
            assert f"worker {pid} stopped answering" in node.log()
        assert pid_alive(healthy) and f"worker {healthy} stopped answering" not in node.log()
        # the replacements serve; nothing else was restarted
        replacements = node.worker_pids()[3:]
        assert len(replacements) == 2
        assert wait_until(lambda: all(f"worker {pid} serving" in node.log() for pid in replacements),
                          timeout=20), node.log()
        assert all(node.token(cid, secret).status_code == 200 for _ in range(10))
        metrics = httpx.get(f"{node.url}/metrics", timeout=5).text
        assert 'warden_worker_replacements_total{cause="unresponsive"} 2.0' in metrics, metrics[-3000:]
    finally:
        for pid in hung:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        code = node.stop()
    assert code == 0, node.log()[-3000:]


def test_no_worker_environment_holds_the_database_password_and_limits_come_from_settings(
        cli_env: dict[str, str], postgres_url: str, make_postgres_schema, tmp_path: Path) -> None:
    password = "pw-" + os.urandom(6).hex()  # the test server trusts loopback, so any password connects
    assert postgres_url.startswith("postgresql://postgres@")
    url = postgres_url.replace("postgres@", f"postgres:{password}@", 1)
    sep = "&" if "?" in url else "?"
    env = dict(cli_env, WARDEN_DATABASE_URL=f"{url}{sep}options=-csearch_path%3D{make_postgres_schema()}",
               WARDEN_KEYS_ENCRYPTION_KEY="q3mCUvYsZyQ1XzX5n1QzY4uQ8i7V7Jm2dB9Y9c5Wc0E",
               WARDEN_SERVER_MAX_HEADERS="12", WARDEN_SERVER_MAX_HEADER_BYTES="2048")
    node = Node(env, tmp_path, workers=2)
    try:
        workers = _workers(node, 2)
        for pid in workers:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert password.encode() not in environ
            assert b"q3mCUvYsZyQ1XzX5n1QzY4uQ8i7V7Jm2dB9Y9c5Wc0E" not in environ
            assert b"WARDEN_DATA_DIR=" in environ  # the non-secret settings are still exported
        # the workers still reached the database: they got the URL through the spawn pipe
        assert httpx.get(f"{node.url}/readyz", timeout=5).status_code == 200
        # server.max_headers and server.max_header_bytes reach every worker's HTTP/1.1 listener (httpx sends 5 headers)
        with httpx.Client(timeout=5) as http:
            for _ in range(4):  # the kernel picks the worker: ask a few times
                assert http.get(f"{node.url}/healthz", headers={f"x-h{i}": "1" for i in range(4)}).status_code == 200
                assert http.get(f"{node.url}/healthz", headers={f"x-h{i}": "1" for i in range(20)}).status_code == 431
                assert http.get(f"{node.url}/healthz", headers={"x-big": "a" * 3000}).status_code == 431
    finally:
        code = node.stop()
    assert code == 0, node.log()[-3000:]
    assert password not in node.log()
