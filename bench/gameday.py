"""A game day you can run: faults against a local observed cluster, then the SLO burn they caused
and the alerts a real Prometheus fired.

    python bench/gameday.py                      # SQLite, `warden serve --workers 2`, ~5 minutes
    python bench/gameday.py --database-url postgresql://postgres@127.0.0.1:5432/test
    python bench/gameday.py --render docs/images # also draw the dashboards (README pictures)
    python bench/gameday.py --for-scale 0.1      # alerts' `for:` durations x0.1, so tickets fire too

Steady token traffic (good, wrong and rate-limited secrets, introspection, revocation), a
warden.client workload calling a warden.resource API, and Prometheus (Debian's package) scraping
all of it every second with deploy/prometheus's rules. The faults, in order:
  1. baseline
  2. two key rotations in a row (the second activates a key published seconds earlier)
  3. one worker killed (SIGKILL; the supervisor restarts it)
  4. a secret expires: rotated with a 30 s grace while the traffic keeps the old one
  5. the whole server frozen (SIGSTOP) for 75 s, then resumed
  6. recovery
It prints what the clients saw, the server-side SLI and burn rate over the run, and every alert
that went pending or firing, with when. Everything binds 127.0.0.1 and stops by itself; the
working directory is deleted unless --keep.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._observe import Cluster, token_traffic

BUDGET = 0.0005


def worker_pids(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text().split() if (task / "children").exists() else []
        children.extend(int(c) for c in text)
    return children


def scaled_rules(cluster: Cluster, factor: float) -> None:
    """Rewrite the copied rules' `for:` durations (the game day is minutes, tickets wait 5-15)."""
    def scale(match: re.Match[str]) -> str:
        value, unit = int(match.group(2)), match.group(3)
        seconds = value * {"s": 1, "m": 60, "h": 3600}[unit]
        return f"{match.group(1)}{max(1, round(seconds * factor))}s"

    for path in (cluster.workdir / "rules").glob("*.rules.yml"):
        path.write_text(re.sub(r"^(\s+for: )(\d+)([smh])$", scale, path.read_text(), flags=re.MULTILINE))


class AlertWatch(threading.Thread):
    def __init__(self, cluster: Cluster, start: float) -> None:
        super().__init__(daemon=True)
        self.cluster, self.start_at = cluster, start
        self.seen: dict[tuple[str, str], dict[str, float]] = {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(1.0):
            try:
                alerts = self.cluster.alerts()
            except Exception:
                continue
            now = time.time() - self.start_at
            for alert in alerts:
                labels = alert["labels"]
                key = (labels["alertname"], labels.get("severity", ""))
                self.seen.setdefault(key, {}).setdefault(alert["state"], now)


class Traffic(threading.Thread):
    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop_event = threading.Event()
        self.codes: dict[str, int] = {}

    def run(self) -> None:
        while not self.stop_event.is_set():
            seen = token_traffic(self.cluster, 2.0, rate=25, stop_at=self.stop_event.is_set)
            for code, count in seen.items():
                self.codes[code] = self.codes.get(code, 0) + count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in the working directory)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--phase", type=float, default=30.0, help="seconds per phase (default 30)")
    parser.add_argument("--for-scale", type=float, default=1.0, help="scale the alerts' `for:` durations")
    parser.add_argument("--render", metavar="DIR", help="draw the dashboards into DIR at the end")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    if args.database_url and "@127.0.0.1" not in args.database_url and "@localhost" not in args.database_url:
        parser.error("the game day only talks to 127.0.0.1")

    workdir = Path(tempfile.mkdtemp(prefix="warden-gameday-"))
    cluster = Cluster(workdir, workers=args.workers, database_url=args.database_url)
    marks: list[tuple[float, str]] = []
    try:
        print(f"gameday: cluster in {workdir}", flush=True)
        cluster.start_warden()
        cluster.setup_clients()
        cluster.start_apps(rate=15)
        cluster.start_prometheus()
        if args.for_scale != 1.0:
            scaled_rules(cluster, args.for_scale)
            os.kill(cluster.procs[-1].proc.pid, signal.SIGHUP)  # Prometheus reloads its rules
        deadline = time.monotonic() + 30  # before the first scrape, absent(up) would make the down alert pending
        while not cluster.query('up{job="warden"}') and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        start = time.time()
        watch = AlertWatch(cluster, start)
        traffic = Traffic(cluster)
        watch.start()
        traffic.start()

        def phase(label: str) -> None:
            marks.append((time.time(), label))
            print(f"gameday: +{time.time() - start:5.0f}s {label}", flush=True)

        phase("baseline")
        time.sleep(args.phase)
        phase("keys rotated twice")
        cluster.cli("keys", "rotate")
        cluster.cli("keys", "rotate")
        time.sleep(args.phase)
        phase("worker killed")
        supervisor = cluster.warden_proc().proc.pid
        victims = worker_pids(supervisor)
        if victims:
            os.kill(victims[0], signal.SIGKILL)
        time.sleep(args.phase)
        phase("secret rotated, 30 s grace")
        cluster.cli("clients", "secrets", "rotate", cluster.clients["batch"][0], "--grace", "30s")
        time.sleep(max(args.phase, 45))
        phase("server frozen (SIGSTOP)")
        os.killpg(supervisor, signal.SIGSTOP)
        time.sleep(75)
        os.killpg(supervisor, signal.SIGCONT)
        phase("server resumed")
        time.sleep(args.phase)
        traffic.stop_event.set()
        traffic.join(timeout=30)
        end = time.time()
        time.sleep(2)
        watch.stop_event.set()
        report(cluster, traffic.codes, watch.seen, start, end)
        if args.render:
            from bench.dashboards import render

            for path in render(cluster.query_range, start, end, Path(args.render), marks):
                print(f"gameday: wrote {path}")
        return 0
    finally:
        cluster.stop()
        if args.keep:
            print(f"gameday: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def report(cluster: Cluster, codes: dict[str, int], seen: dict[tuple[str, str], dict[str, float]],
           start: float, end: float) -> None:
    window = f"{int(end - start) + 1}s"

    def scalar(expr: str) -> float:
        result = cluster.query(expr, at=end)
        return float(result[0]["value"][1]) if result else float("nan")

    total = scalar(f"sum(increase(warden_token_requests_total[{window}]))")
    errors = scalar(f'sum(increase(warden_token_requests_total{{outcome="error"}}[{window}])) or vector(0)')
    refused = scalar(f'sum(increase(warden_token_requests_total{{outcome!~"issued|error"}}[{window}])) or vector(0)')
    client_total = sum(codes.values())
    client_failed = sum(n for code, n in codes.items() if not code.isdigit() or code.startswith("5"))
    print("\n== what the raw token traffic saw (client side)")
    print("   " + ", ".join(f"{code}: {n}" for code, n in sorted(codes.items())))
    print(f"   failed without an OAuth answer (5xx, timeouts, resets): {client_failed} of {client_total}"
          f" = {client_failed / max(client_total, 1):.2%}")
    print(f"\n== server-side SLI over the run ({window}, from Prometheus)")
    print(f"   token requests counted {total:.0f}, server errors {errors:.0f}, refusals {refused:.0f}")
    ratio = errors / total if total else float("nan")
    print(f"   error ratio {ratio:.4%}; burn rate {ratio / BUDGET:.1f}x the 99.95 % budget;"
          f" budget spent if the whole month ran like this: {ratio / BUDGET:.0%}")
    client_ratio = client_failed / max(client_total, 1)
    print(f"   burn as the clients saw it: {client_ratio / BUDGET:.1f}x (requests that never reached a"
          f" counter: the server-side SLI cannot see a frozen or dead process; a black-box probe can)")
    print("\n== alerts (seconds after start)")
    if not seen:
        print("   none went pending or firing")
    for (name, severity), states in sorted(seen.items(), key=lambda kv: min(kv[1].values())):
        text = ", ".join(f"{state} at +{at:.0f}s" for state, at in sorted(states.items(), key=lambda s: s[1]))
        print(f"   {name} [{severity}]: {text}")


if __name__ == "__main__":
    raise SystemExit(main())
