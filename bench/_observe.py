"""A local observed cluster: `warden serve`, a resource server and a workload (bench/observe_app.py),
and a real Prometheus (Debian's package) scraping them every second with Warden's rules loaded.

Used by tests/deploy/test_observability_live.py, bench/gameday.py and bench/dashboards.py.
Everything binds 127.0.0.1 on free ports and lives in one working directory; every process is
started here and stopped here, by its PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RULES = sorted((ROOT / "deploy" / "prometheus").glob("*.rules.yml"))
VENV_BIN = Path(sys.executable).parent
API = "https://orders.example"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None)


def warden_command() -> list[str]:
    exe = VENV_BIN / "warden"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "warden.cli.main"]


class Proc:
    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
                 ready: str | None = None, timeout: float = 60) -> None:
        self.name = name
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115  # closed by stop()
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        if ready:
            deadline = time.monotonic() + timeout
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{name} exited early: {self.tail()}")
                try:
                    if httpx.get(ready, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name}: {ready} never answered: {self.tail()}")
                time.sleep(0.1)

    def tail(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the server and its workers
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._out.close()


@dataclass
class Cluster:
    workdir: Path
    workers: int = 2
    database_url: str | None = None
    scrape_interval: str = "1s"
    procs: list[Proc] = field(default_factory=list)
    port: int = 0
    prom_port: int = 0
    clients: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def prom(self) -> str:
        return f"http://127.0.0.1:{self.prom_port}"

    # -- Warden -----------------------------------------------------------------------------------
    def store_args(self) -> list[str]:
        args = ["--data-dir", str(self.workdir / "data")]
        return args + (["--database-url", self.database_url] if self.database_url else [])

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
        env["WARDEN_LIMITS_FAILED_AUTH_PER_MINUTE"] = "600"
        return env

    def cli(self, *args: str) -> Any:
        proc = subprocess.run([*warden_command(), *args, *self.store_args(), "--json"], capture_output=True,
                              text=True, timeout=60, env=self.env(), check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"warden {' '.join(args[:3])}: {proc.stderr.strip()}")
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def start_warden(self) -> None:
        self.port = self.port or free_port()
        argv = [*warden_command(), "serve", "--port", str(self.port), "--workers", str(self.workers),
                *self.store_args()]
        self.procs.append(Proc("warden", argv, self.workdir / "warden.log", self.env(),
                               ready=f"{self.issuer}/readyz"))

    def warden_proc(self) -> Proc:
        return next(p for p in self.procs if p.name == "warden")

    def setup_clients(self) -> None:
        self.cli("apis", "create", API, "--scopes", "read write", "--ttl", "2m")
        for name, extra in (("worker", []), ("batch", []), ("noisy", ["--rate-limit", "2"])):
            made = self.cli("clients", "create", name, "--grant", f"{API}=read", *extra)
            self.clients[name] = (made["client_id"], made["client_secret"])

    # -- applications ------------------------------------------------------------------------------
    def start_apps(self, rate: float = 20.0) -> None:
        app = str(ROOT / "bench" / "observe_app.py")
        self.api_port, self.worker_port = free_port(), free_port()
        self.procs.append(Proc("orders-api", [sys.executable, app, "resource", "--issuer", self.issuer,
                                              "--audience", API, "--port", str(self.api_port)],
                               self.workdir / "orders-api.log", ready=f"http://127.0.0.1:{self.api_port}/healthz"))
        client_id, secret = self.clients["worker"]
        env = {**os.environ, "WARDEN_CLIENT_SECRET": secret}
        self.procs.append(Proc("orders-worker", [sys.executable, app, "client", "--issuer", self.issuer,
                                                 "--audience", API, "--client-id", client_id,
                                                 "--api", f"http://127.0.0.1:{self.api_port}",
                                                 "--port", str(self.worker_port), "--rate", str(rate)],
                               self.workdir / "orders-worker.log", env=env,
                               ready=f"http://127.0.0.1:{self.worker_port}/healthz"))

    # -- Prometheus --------------------------------------------------------------------------------
    def start_prometheus(self) -> None:
        binary = prometheus_binary()
        if binary is None:
            raise RuntimeError("prometheus is not installed (Debian package prometheus)")
        self.prom_port = free_port()
        rules_dir = self.workdir / "rules"
        rules_dir.mkdir(exist_ok=True)
        for path in RULES:
            shutil.copy(path, rules_dir / path.name)
        jobs = {"warden": [f"127.0.0.1:{self.port}"]}
        if any(p.name == "orders-api" for p in self.procs):
            jobs["orders-api"] = [f"127.0.0.1:{self.api_port}"]
            jobs["orders-worker"] = [f"127.0.0.1:{self.worker_port}"]
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "rule_files": [str(rules_dir / "*.rules.yml")],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                               for job, targets in jobs.items()],
        }
        (self.workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        argv = [binary, f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.prom_port}",
                "--storage.tsdb.retention.time=1d", "--log.level=warn"]
        self.procs.append(Proc("prometheus", argv, self.workdir / "prometheus.log", ready=f"{self.prom}/-/ready"))

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        body = httpx.get(f"{self.prom}/api/v1/query", params=params, timeout=30).json()
        if body["status"] != "success":
            raise RuntimeError(f"{expr}: {body.get('error')}")
        return list(body["data"]["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.prom}/api/v1/query_range",
                         params={"query": expr, "start": start, "end": end, "step": step}, timeout=60).json()
        if body["status"] != "success":
            raise RuntimeError(f"{expr}: {body.get('error')}")
        return list(body["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.prom}/api/v1/alerts", timeout=10).json()["data"]["alerts"])

    def scraped_names(self) -> set[str]:
        body = httpx.get(f"{self.prom}/api/v1/label/__name__/values", timeout=10).json()
        return set(body["data"])

    def targets_up(self) -> bool:
        return all(float(r["value"][1]) == 1 for r in self.query("up")) and bool(self.query("up"))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


def token_traffic(cluster: Cluster, seconds: float, *, rate: float = 20.0, stop_at: Any = None) -> dict[str, int]:
    """Raw token-endpoint traffic beside the workload: good and wrong secrets, a rate-limited
    client, introspection and revocation. Returns the status codes seen."""
    http = httpx.Client(timeout=5)
    token_url = f"{cluster.issuer}/oauth2/token"
    batch, noisy = cluster.clients["batch"], cluster.clients["noisy"]
    seen: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline and not (stop_at and stop_at()):
        n += 1
        try:
            if n % 10 == 0:
                response = http.post(token_url, data={"grant_type": "client_credentials"},
                                     auth=(batch[0], "wrong-" + batch[1][-8:]))
            elif n % 4 == 0:
                response = http.post(token_url, data={"grant_type": "client_credentials"}, auth=noisy)
            else:
                response = http.post(token_url, data={"grant_type": "client_credentials"}, auth=batch)
                if response.status_code == 200 and n % 7 == 0:
                    token = response.json()["access_token"]
                    http.post(f"{cluster.issuer}/oauth2/introspect", data={"token": token}, auth=batch)
                    if n % 21 == 0:
                        http.post(f"{cluster.issuer}/oauth2/revoke", data={"token": token}, auth=batch)
            seen[str(response.status_code)] = seen.get(str(response.status_code), 0) + 1
        except httpx.HTTPError as exc:
            seen[type(exc).__name__] = seen.get(type(exc).__name__, 0) + 1
        time.sleep(1 / rate)
    http.close()
    return seen
