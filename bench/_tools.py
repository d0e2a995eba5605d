"""Shared bench plumbing: install what is missing, free ports, pinned processes, wrk runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent


def ensure_wrk() -> str:
    """wrk from Debian's package, installed when missing (the bench needs a compiled load generator)."""
    path = shutil.which("wrk")
    if path:
        return path
    print("bench: installing wrk (apt-get install wrk)", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("bench: wrk is required and could not be installed")
    return path


def ensure_python_package(module: str, requirement: str) -> None:
    try:
        __import__(module)
    except ImportError:
        print(f"bench: installing {requirement}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", requirement], check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(cpu: int) -> list[str]:
    """taskset prefix when there are at least two CPUs, so server and load generator do not share one."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


class Process:
    """A background server started for one measurement, stopped by its own PID."""

    def __init__(self, argv: list[str], ready_url: str, env: dict[str, str] | None = None,
                 log: Path | None = None) -> None:
        self.log = log
        out = open(log, "wb") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: {argv[0:4]} exited early; see {log}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"bench: {ready_url} never became ready")

    def rss_mb(self) -> float:
        """Resident memory of the serving process (the worker, when uvicorn runs one in-process)."""
        total = 0
        for pid in [self.proc.pid] + _children(self.proc.pid):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total = max(total, int(line.split()[1]))
            except OSError:
                pass
        return round(total / 1024, 1)

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server process and its children so far (from /proc)."""
        total = 0
        for pid in [self.proc.pid] + _children(self.proc.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
            except (OSError, IndexError, ValueError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@dataclass
class WrkResult:
    label: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    server_cpu_us: float | None = None  # server CPU time per request: unlike req/s, immune to CPU stolen by others

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s)", text)
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(label: str, url: str, script: Path | None, connections: int, duration: float,
            cpu: int | None = 1, server: Process | None = None) -> WrkResult:
    """`cpu`: the CPU wrk is pinned to (None: not pinned)."""
    argv = [*(pin(cpu) if cpu is not None else []), ensure_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    cpu_before = server.cpu_seconds() if server else 0.0
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    cpu_used = server.cpu_seconds() - cpu_before if server else 0.0
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"^\s*(\d+) requests in", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    per_request = round(cpu_used / int(total.group(1)) * 1e6, 1) if server and total and int(total.group(1)) else None
    return WrkResult(label, connections, float(rps.group(1)) if rps else 0.0, _ms(pct.get("50", "")),
                     _ms(pct.get("90", "")), _ms(pct.get("99", "")), int(non2xx.group(1)) if non2xx else 0,
                     sum(int(g) for g in errors.groups()) if errors else 0, per_request)


def write_json(name: str, data: object) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
