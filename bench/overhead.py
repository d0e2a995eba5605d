"""Benchmark: issuance throughput of this tree against another commit, interleaved in one run.

Each round starts `warden serve` (one worker, CPU 0) from the baseline tree, then from this
tree, on the same SQLite data, and measures ES256 client_secret_basic issuance with wrk
(CPU 1, 16 connections). Reported: req/s and server CPU µs per request of each, and the ratio
this/baseline (median over rounds). Used for the cost of metrics on the token hot path.

    .venv/bin/python bench/overhead.py --baseline-ref main [--rounds 3] [--duration 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _tools import Process, free_port, pin, run_wrk, write_json  # noqa: E402
from issuance import api_for, lua_script, populate, warden_env  # noqa: E402


def start(src: Path, data_dir: str, work: Path) -> tuple[Process, str]:
    port = free_port()
    env = warden_env(data_dir, work, port) | {"PYTHONPATH": str(src)}
    argv = [*pin(0), sys.executable, "-m", "warden.cli.main", "serve", "--port", str(port)]
    return Process(argv, f"http://127.0.0.1:{port}/readyz", env, work / f"warden-{port}.log"), \
        f"http://127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-ref", default="main")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    repo = HERE.parent
    work = Path(tempfile.mkdtemp(prefix="warden-overhead-"))
    base = work / "baseline"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(base), args.baseline_ref],
                   check=True, capture_output=True)
    try:
        data_dir = str(work / "data")
        creds = populate(data_dir, 10, 10)
        script = lua_script(work / "es256.lua", creds, "/oauth2/token",
                            f"grant_type=client_credentials&resource={api_for('ES256')}")
        runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "this": []}
        for _ in range(args.rounds):
            for label, src in (("baseline", base / "src"), ("this", repo / "src")):
                proc, url = start(src, data_dir, work)
                try:
                    run_wrk("warm-up", f"{url}/oauth2/token", script, 16, 2)
                    result = run_wrk(label, f"{url}/oauth2/token", script, 16, args.duration, server=proc)
                    assert result.non_2xx == 0, f"{label}: {result.non_2xx} non-2xx answers"
                    runs[label].append((result.requests_per_s, result.server_cpu_us or float("nan")))
                    print(f"{label:9s} {result.requests_per_s:9.0f} req/s  {result.server_cpu_us} µs CPU/request",
                          flush=True)
                finally:
                    proc.stop()
        rps = {k: statistics.median(r for r, _ in v) for k, v in runs.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
        summary = {"baseline_ref": args.baseline_ref, "rounds": args.rounds, "duration": args.duration,
                   "req_per_s": rps, "cpu_us_per_request": cpu, "ratio_req_per_s": rps["this"] / rps["baseline"],
                   "ratio_cpu_per_request": cpu["this"] / cpu["baseline"]}
        print(f"ratio this/baseline: req/s {summary['ratio_req_per_s']:.3f}, "
              f"CPU per request {summary['ratio_cpu_per_request']:.3f}")
        write_json("overhead", summary)
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(base)], capture_output=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
