"""Benchmark: what Redis-shared state (`redis_url`) costs and how exact the cluster-wide limit is.

1. Issuance with Redis limits on vs off, interleaved in one run: two `warden serve` processes on
   the same data (10 clients, client_secret_basic, ES256), one with `WARDEN_REDIS_URL`, measured
   off, on, off, on... with wrk; each pinned to CPU 0, wrk on CPU 1. The per-client limit is
   raised so it is evaluated on every request but not reached (the cost of deciding, not 429s).
2. The single-use `jti` record: one `use_once` through Redis (SET NX PX) against the store's
   (SQLite in a temporary directory; PostgreSQL when WARDEN_TEST_POSTGRES_URL reaches one), mean
   microseconds per call from one asyncio loop.
3. The limiter's error bound: two processes (two "nodes"), each with its own `ClusterRateLimiter`
   on one Redis, take from one key as fast as they can for 10 s; the total admitted is compared
   with burst + rate x 10 s.

    .venv/bin/python bench/cluster.py [--duration 10] [--rounds 3] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tools import VENV_BIN, Process, free_port, pin, run_wrk, write_json  # noqa: E402
from issuance import api_for, lua_script, populate, warden_env  # noqa: E402


def _start(data_dir: str, work: Path, redis_url: str | None, prefix: str) -> tuple[Process, str]:
    port = free_port()
    env = warden_env(data_dir, work, port)
    if redis_url:
        env.update(WARDEN_REDIS_URL=redis_url, WARDEN_REDIS_KEY_PREFIX=prefix)
    argv = [*pin(0), str(VENV_BIN / "warden"), "serve", "--port", str(port)]
    proc = Process(argv, f"http://127.0.0.1:{port}/readyz", env, work / f"warden-{port}.log")
    return proc, f"http://127.0.0.1:{port}"


def issuance(args: argparse.Namespace, work: Path) -> dict[str, object]:
    data_dir = str(work / "data")
    creds = populate(data_dir, 10, 10)
    script = lua_script(work / "es256.lua", creds, "/oauth2/token",
                        f"grant_type=client_credentials&resource={api_for('ES256')}")
    prefix = f"warden-bench:{secrets.token_hex(4)}:"
    servers = {"off": _start(data_dir, work, None, prefix), "on": _start(data_dir, work, args.redis_url, prefix)}
    rps: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for name, (proc, url) in servers.items():
            run_wrk(f"warm {name}", f"{url}/oauth2/token", script, 16, 2)
        for _ in range(args.rounds):
            for name in ("off", "on"):
                proc, url = servers[name]
                result = run_wrk(f"ES256 redis {name}", f"{url}/oauth2/token", script, 16, args.duration, server=proc)
                if result.non_2xx:
                    raise SystemExit(f"bench: {result.non_2xx} non-2xx answers with redis {name}")
                rps[name].append(result.requests_per_s)
    finally:
        for proc, _ in servers.values():
            proc.stop()
    off, on = statistics.mean(rps["off"]), statistics.mean(rps["on"])
    return {"rps_off": rps["off"], "rps_on": rps["on"], "ratio_on_over_off": round(on / off, 3)}


async def _use_once_cost(redis_url: str, n: int) -> dict[str, float]:
    from warden.services.shared_state import SharedState
    from warden.storage.engine import open_store

    out: dict[str, float] = {}
    state = SharedState(redis_url, prefix=f"warden-bench:{secrets.token_hex(4)}:")
    exp = time.time() + 60
    await state.use_once("warm", exp)
    t0 = time.perf_counter()
    for i in range(n):
        await state.use_once(f"pkjwt:c:{i}", exp)
    out["redis_us"] = (time.perf_counter() - t0) / n * 1e6
    await state.aclose()
    stores = {"sqlite_us": open_store(None, tempfile.mkdtemp(prefix="warden-bench-jti-"))}
    pg = os.environ.get("WARDEN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        stores["postgres_us"] = open_store(pg, "/nonexistent")
    except Exception as exc:  # the figure is simply left out
        print(f"bench: PostgreSQL left out: {type(exc).__name__}", file=sys.stderr)
    for name, store in stores.items():
        store.migrate()
        tag = secrets.token_hex(4)
        t0 = time.perf_counter()
        for i in range(n):  # as the server does it: in a thread, off the event loop
            await asyncio.to_thread(store.use_assertion, f"bench:{tag}:{i}", exp)
        out[name] = (time.perf_counter() - t0) / n * 1e6
        store.purge_assertions(exp + 1)
        store.close()
    return {k: round(v, 1) for k, v in out.items()}


def _node(redis_url: str, prefix: str, rate: float, burst: float, seconds: float, start_at: float,
          results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from warden.services.shared_state import ClusterRateLimiter, SharedState

    async def main() -> int:
        state = SharedState(redis_url, prefix=prefix)
        limiter = ClusterRateLimiter(state, "rate")
        limiter.start()
        while time.time() < start_at:
            await asyncio.sleep(0.001)
        admitted, end = 0, start_at + seconds
        while (now := time.time()) < end:
            for _ in range(20):
                if limiter.take("one-client", rate, burst, now) == 0.0:
                    admitted += 1
            await asyncio.sleep(0)  # let the settle task run, as a serving loop would between requests
        await limiter.stop()
        await state.aclose()
        return admitted

    results.put(asyncio.run(main()))


def accuracy(redis_url: str, rate: float, burst: float, seconds: float = 10.0) -> dict[str, object]:
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    prefix = f"warden-bench:{secrets.token_hex(4)}:"
    start_at = time.time() + 2.0
    nodes = [ctx.Process(target=_node, args=(redis_url, prefix, rate, burst, seconds, start_at, results))
             for _ in range(2)]
    for node in nodes:
        node.start()
    counts = [results.get(timeout=seconds + 30) for _ in nodes]
    for node in nodes:
        node.join()
    expected = burst + rate * seconds
    total = sum(counts)
    return {"rate": rate, "burst": burst, "seconds": seconds, "per_node": counts, "total": total,
            "expected": expected, "error_of_rate_window": round((total - expected) / (rate * seconds), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs")
    parser.add_argument("--redis-url", default=os.environ.get("WARDEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--skip-issuance", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="warden-bench-cluster-"))
    report: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count()}
    report["accuracy"] = [accuracy(args.redis_url, 100.0, 200.0), accuracy(args.redis_url, 1000.0, 2000.0)]
    report["use_once"] = asyncio.run(_use_once_cost(args.redis_url, 2000))
    if not args.skip_issuance:
        report["issuance"] = issuance(args, work)
    write_json("cluster.json", report)
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
