"""Benchmark: a million registered clients, 10,000 of them calling (issue 10, item 6).

One SQLite store is seeded with `--clients` clients through the storage interface
(`Store.create_clients`, batches of 50,000): the `--calling` clients that send requests,
plus `--cold` more that are asked for once (the miss path), have their own secrets
hashed with the real keyed hash; every other client carries one hash computed once
(its secret is never presented), which is what makes seeding a million take a minute
rather than an hour through the admin path. The server reads them all the normal way.

For `--workers 1` and `2` it then starts, side by side, `warden serve` on a 10-client
store (the baseline) and on the big store, and measures:

- start-up: seconds from exec to `/readyz` answering 200 (for 2 workers, 20 answers in a
  row, so both workers serve);
- resident memory of each worker (VmRSS from /proc) after the runs;
- issuance rate: wrk runs alternating baseline / big (`--rounds` pairs, same connections,
  same duration), big spread over the 10,000 calling clients; reported as big / baseline;
- the miss path: `--cold` clients asked for once each, one request at a time (first
  request of a cold client), then again (cached): p50 / p99 latency of both;
- an unknown-id spray: wrk sending `--spray` distinct made-up client ids, then the same
  ids again; the store queries it caused (`warden_registry_store_lookups_total`) and
  the ids they asked for, against the requests sent, and how many got 401 / 503.

The 1-worker servers are pinned to CPU 0 and wrk to CPU 1; the 2-worker servers are not
pinned. Run it niced:

    nice -n 10 .venv/bin/python bench/million_clients.py [--clients 1000000] [--calling 10000] [--duration 5] [--rounds 4] [--work DIR]

Results go to bench/results/million_clients.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tools import VENV_BIN, WrkResult, free_port, pin, run_wrk, write_json

API = "https://es256.bench.example"
BODY = f"grant_type=client_credentials&resource={API}"


def seed(data_dir: str, n_clients: int, with_secrets: int) -> tuple[list[tuple[str, str]], float]:
    """`n_clients` clients through `Store.create_clients`; the first `with_secrets` get their own secret.
    Returns their credentials and the seconds seeding took."""
    from warden.core.client import Client, Grant
    from warden.core.clock import SystemClock
    from warden.core.secrets import ClientSecret, generate_secret, hash_secret
    from warden.services.admin import Admin
    from warden.services.audit import AuditSink
    from warden.services.kek import load_kek
    from warden.storage.contract import ClientRecord
    from warden.storage.engine import open_store

    t0 = time.monotonic()
    material = load_kek(None, data_dir)
    store = open_store(None, data_dir)
    store.migrate()
    admin = Admin(store, material, SystemClock(), AuditSink(), actor="bench")
    admin.keyring.ensure_keys()
    admin.save_api(API, ["read", "write"], alg="ES256")
    now = time.time()
    shared_hash = hash_secret(material.pepper, generate_secret(secrets.token_bytes))  # computed once
    creds: list[tuple[str, str]] = []
    batch: list[ClientRecord] = []
    for i in range(n_clients):
        client_id = f"m-{i:07d}"
        if i < with_secrets:
            secret = generate_secret(secrets.token_bytes)
            creds.append((client_id, secret))
            digest, hint = hash_secret(material.pepper, secret), secret[-4:]
        else:
            digest, hint = shared_hash, "----"
        batch.append(ClientRecord(Client(client_id, client_id, created_at=now),
                                  (Grant(client_id, API, ("read",), 0),),
                                  (ClientSecret(f"ms_{i:08x}", client_id, digest, now, hint=hint),)))
        if len(batch) == 50_000:
            store.create_clients(batch)
            batch = []
    store.create_clients(batch)
    store.close()
    return creds, time.monotonic() - t0


def auth_header(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def lua_script(path: Path, creds: list[tuple[str, str]], offset: int = 0) -> Path:
    """Requests cycling through `creds`, starting at `offset` (each wrk process starts the cycle afresh)."""
    auths = ",\n".join(f'"{auth_header(c, s)}"' for c, s in creds)
    path.write_text(f"""
local auths = {{ {auths} }}
local n = #auths
local i = {offset}
request = function()
  i = i + 1
  return wrk.format("POST", "/oauth2/token", {{
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auths[((i - 1) % n) + 1],
  }}, "{BODY}")
end
""")
    return path


class Server:
    """`warden serve` on a data dir; start-up timed to /readyz; per-worker RSS from /proc."""

    def __init__(self, data_dir: str, work: Path, workers: int, label: str, cache_size: int | None = None,
                 status_list: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
        env.update(WARDEN_DATA_DIR=data_dir, WARDEN_AUDIT_SINK=str(work / f"audit-{self.port}.jsonl"),
                   WARDEN_LOG_LEVEL="warning", WARDEN_LIMITS_CLIENT_RATE="1000000",
                   WARDEN_LIMITS_CLIENT_BURST="1000000", WARDEN_LIMITS_FAILED_AUTH_PER_MINUTE="1000000")
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if not status_list:
            env["WARDEN_STATUS_LIST_ENABLED"] = "false"
        if cache_size is not None:
            env["WARDEN_REGISTRY_CACHE_SIZE"] = str(cache_size)
        argv = [*(pin(0) if workers == 1 else []), str(VENV_BIN / "warden"), "serve", "--port", str(self.port),
                "--workers", str(workers)]
        log_path = work / f"{label}-{self.port}.log"
        t0 = time.monotonic()
        with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        in_a_row, needed = 0, (1 if workers == 1 else 20)
        while in_a_row < needed:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: {label} server exited; see {log_path}")
            if time.monotonic() - t0 > 120:
                self.stop()
                raise SystemExit(f"bench: {label} server not ready after 120 s")
            try:
                ok = httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                ok = False
            in_a_row = in_a_row + 1 if ok else 0
            if not ok:
                time.sleep(0.05)
        self.ready_s = round(time.monotonic() - t0, 2)

    def worker_rss_mb(self) -> list[float]:
        """VmRSS of each process serving requests: the workers (or the one process with 1 worker)."""
        pids = _children(self.proc.pid) or [self.proc.pid]
        out = []
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"^VmRSS:\s+(\d+)", status, re.MULTILINE)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if match and b"resource_tracker" not in cmdline:  # multiprocessing's helper serves nothing
                out.append(round(int(match.group(1)) / 1024, 1))
        return out

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] != name or any(f'{k}="{v}"' not in head for k, v in labels.items()):
                continue
            total += float(value)
        return total

    def cpu_seconds(self) -> float:
        total = 0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def wrk(label: str, server: Server, script: Path, connections: int, duration: float, workers: int) -> WrkResult:
    """wrk pinned to CPU 1 against a 1-worker server (pinned to CPU 0), unpinned against 2 workers."""
    return run_wrk(label, f"{server.url}/oauth2/token", script, connections, duration,
                   cpu=1 if workers == 1 else None)


def warm_up(server: Server, creds: list[tuple[str, str]], work: Path, workers: int,
            limit_s: float = 120.0) -> dict[str, float]:
    """Until every worker holds every calling client: wrk rounds of 5 s (64 connections, so misses share
    queries) until the server has looked up each calling client once per worker (nothing is evicted:
    they fit the cache). The first pass is their miss path, all at once; its duration and store
    queries are reported."""
    t0, requests = time.monotonic(), 0
    queries0 = server.metric("warden_registry_store_lookups_total")
    ids0 = server.metric("warden_registry_store_lookup_ids_total")
    while time.monotonic() - t0 < limit_s:
        script = lua_script(work / f"warm-{server.port}.lua", creds, offset=requests)  # go on where it stopped
        result = wrk("warm-up", server, script, 64, 5, workers)
        requests += round(result.requests_per_s * 5)
        if server.metric("warden_registry_store_lookup_ids_total") - ids0 >= len(creds) * workers:
            break
    return {"seconds": round(time.monotonic() - t0, 1), "requests": requests,
            "store_queries": server.metric("warden_registry_store_lookups_total") - queries0,
            "ids_looked_up": server.metric("warden_registry_store_lookup_ids_total") - ids0,
            "workers": workers}


def status_blocks(data_dir: str) -> int:
    """Status-list blocks reserved in the store so far (a read of the SQLite file the server writes)."""
    import sqlite3
    with sqlite3.connect(f"file:{data_dir}/warden.db?mode=ro", uri=True, timeout=10) as db:
        return int(db.execute("SELECT count(*) FROM status_blocks").fetchone()[0])


def miss_path(server: Server, creds: list[tuple[str, str]]) -> dict[str, float]:
    """Each client's first request (not cached) and its second (cached), one request at a time."""
    cold, warm = [], []
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for rounds in (cold, warm):
            for client_id, secret in creds:
                t0 = time.perf_counter()
                response = http.post("/oauth2/token", content=BODY,
                                     headers={"Authorization": auth_header(client_id, secret),
                                              "Content-Type": "application/x-www-form-urlencoded"})
                rounds.append((time.perf_counter() - t0) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"bench: cold client {client_id} got {response.status_code}: {response.text}")

    def pct(values: list[float], q: float) -> float:
        return round(sorted(values)[min(len(values) - 1, int(q * len(values)))], 2)

    return {"clients": len(creds), "cold_p50_ms": pct(cold, 0.5), "cold_p99_ms": pct(cold, 0.99),
            "cached_p50_ms": pct(warm, 0.5), "cached_p99_ms": pct(warm, 0.99)}


def spray(server: Server, work: Path, n: int, duration: float, workers: int) -> dict[str, float]:
    """wrk with `n` distinct made-up client ids, twice; what it cost the store."""
    fake = [(f"ghost-{secrets.token_hex(6)}", "wsec_not-a-real-secret") for _ in range(n)]
    script = lua_script(work / f"spray-{server.port}.lua", fake)
    out: dict[str, float] = {"distinct_ids": n}
    for phase in ("first", "again"):
        queries0 = server.metric("warden_registry_store_lookups_total")
        ids0 = server.metric("warden_registry_store_lookup_ids_total")
        unknown0 = server.metric("warden_token_requests_total", reason="unknown_client")
        busy0 = server.metric("warden_token_requests_total", reason="registry_busy")
        result = wrk(f"spray {phase}", server, script, 16, duration, workers)
        out[f"{phase}_requests"] = round(result.requests_per_s * max(1, round(duration)))
        out[f"{phase}_store_queries"] = server.metric("warden_registry_store_lookups_total") - queries0
        out[f"{phase}_ids_looked_up"] = server.metric("warden_registry_store_lookup_ids_total") - ids0
        out[f"{phase}_401"] = server.metric("warden_token_requests_total", reason="unknown_client") - unknown0
        out[f"{phase}_503"] = server.metric("warden_token_requests_total", reason="registry_busy") - busy0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1_000_000, help="registered clients in the big store")
    parser.add_argument("--calling", type=int, default=10_000, help="clients the big run spreads requests over")
    parser.add_argument("--cold", type=int, default=300, help="clients asked for once each (the miss path)")
    parser.add_argument("--spray", type=int, default=20_000, help="distinct unknown client ids sprayed")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=4, help="baseline/big pairs of wrk runs per worker count")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    parser.add_argument("--work", default="",
                        help="keep the seeded stores here and reuse them on the next run (default: a fresh temp dir)")
    parser.add_argument("--no-status-list", action="store_true",
                        help="both servers without token status lists (status_list.enabled = false)")
    parser.add_argument("--out", default="million_clients.json", help="file name under bench/results")
    parser.add_argument("--cache-size", type=int, default=None,
                        help="registry.cache_size of both servers (default: the setting's default, 100,000)")
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="warden-million-"))
    d = args.duration

    small_dir, big_dir = str(work / "small"), str(work / "big")
    seeded = work / f"seeded-{args.clients}-{args.calling + args.cold}.json"
    if seeded.exists():  # --work: the stores an earlier run seeded (what its servers wrote there is harmless)
        saved = json.loads(seeded.read_text())
        small_creds, big_creds, seed_s = ([tuple(c) for c in saved["small"]], [tuple(c) for c in saved["big"]],
                                          saved["seed_s"])
    else:
        for old in (small_dir, big_dir):
            shutil.rmtree(old, ignore_errors=True)
        small_creds, _ = seed(small_dir, 10, 10)
        big_creds, seed_s = seed(big_dir, args.clients, args.calling + args.cold)
        if args.work:
            seeded.write_text(json.dumps({"small": small_creds, "big": big_creds, "seed_s": seed_s}))
    calling, cold = big_creds[:args.calling], big_creds[args.calling:]
    print(f"bench: seeded {args.clients} clients in {seed_s:.1f}s", file=sys.stderr)
    small_script = lua_script(work / "small.lua", small_creds)
    big_script = lua_script(work / "big.lua", calling)
    report: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                                 "clients": args.clients, "calling": args.calling, "seed_s": round(seed_s, 1),
                                 "duration_s": d, "connections": args.connections, "cache_size": args.cache_size,
                                 "status_list": not args.no_status_list,
                                 "command": " ".join(["bench/million_clients.py", *sys.argv[1:]]), "runs": {}}
    cold_left = list(cold)
    for workers in [int(w) for w in args.workers.split(",") if w]:
        small = Server(small_dir, work, workers, f"small-w{workers}", args.cache_size, not args.no_status_list)
        big = Server(big_dir, work, workers, f"big-w{workers}", args.cache_size, not args.no_status_list)
        row: dict[str, object] = {"ready_s_10_clients": small.ready_s, "ready_s_big": big.ready_s}
        wrk("warm-up", small, small_script, args.connections, 2, workers)
        row["warm_up"] = warm_up(big, calling, work, workers)
        pairs = []
        blocks0 = status_blocks(big_dir)
        for _ in range(args.rounds):
            base = wrk("10 clients", small, small_script, args.connections, d, workers)
            many = wrk(f"{args.clients} registered, {args.calling} calling", big, big_script, args.connections, d,
                       workers)
            pairs.append((base.as_dict(), many.as_dict()))
        base_rps = statistics.mean(p[0]["requests_per_s"] for p in pairs)  # type: ignore[misc]
        big_rps = statistics.mean(p[1]["requests_per_s"] for p in pairs)  # type: ignore[misc]
        # The machine is shared: the median of the per-pair ratios is the figure least moved by a busy spell.
        ratios = [p[1]["requests_per_s"] / p[0]["requests_per_s"] for p in pairs if p[0]["requests_per_s"]]
        row["issuance"] = {"pairs": pairs, "baseline_rps": round(base_rps), "big_rps": round(big_rps),
                           "ratio_of_means": round(big_rps / base_rps, 3),
                           "pair_ratios": [round(r, 3) for r in ratios],
                           "ratio": round(statistics.median(ratios), 3),
                           "status_blocks_reserved": status_blocks(big_dir) - blocks0}
        share, cold_left = cold_left[:len(cold) // 2], cold_left[len(cold) // 2:]
        row["miss_path"] = miss_path(big, share)
        row["spray"] = spray(big, work, args.spray, max(2.0, d / 2), workers)
        row["rss_mb_10_clients"] = small.worker_rss_mb()
        row["rss_mb_big"] = big.worker_rss_mb()
        small.stop()
        big.stop()
        report["runs"][str(workers)] = row  # type: ignore[index]
        print(f"bench: workers={workers} done", file=sys.stderr)
    write_json(args.out, report)
    print(render(report))
    return 0


def render(report: dict) -> str:
    lines = [f"million clients ({report['date']}, {report['clients']} registered, {report['calling']} calling, "
             f"seeded in {report['seed_s']} s, {report['duration_s']:.0f} s per wrk run, "
             f"{report['connections']} connections)",
             "| workers | ready (s) 10 / big | worker RSS MB 10 / big | issuance big / 10 clients | "
             "cold p50/p99 ms | cached p50/p99 ms | spray: requests, store queries, ids looked up, 503 |",
             "|---|---|---|---|---|---|---|"]
    for workers, r in report["runs"].items():
        m, s, i = r["miss_path"], r["spray"], r["issuance"]
        lines.append(
            f"| {workers} | {r['ready_s_10_clients']} / {r['ready_s_big']} | "
            f"{'+'.join(map(str, r['rss_mb_10_clients']))} / {'+'.join(map(str, r['rss_mb_big']))} | "
            f"{i['ratio']:.3f} (median of {len(i['pair_ratios'])} pairs; means {i['big_rps']} / {i['baseline_rps']} "
            f"req/s; {i.get('status_blocks_reserved', 0)} status blocks reserved meanwhile) | "
            f"{m['cold_p50_ms']}/{m['cold_p99_ms']} | {m['cached_p50_ms']}/{m['cached_p99_ms']} | "
            f"first: {s['first_requests']:.0f}, {s['first_store_queries']:.0f}, {s['first_ids_looked_up']:.0f}, "
            f"{s['first_503']:.0f}; again: {s['again_requests']:.0f}, {s['again_store_queries']:.0f}, "
            f"{s['again_ids_looked_up']:.0f}, {s['again_503']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
