"""Benchmark: token issuance, the HTTP floor, registry scale and introspection.

`warden serve` runs with one worker pinned to CPU 0 and wrk pinned to CPU 1,
keep-alive connections, client_secret_basic, SQLite, audit events written to a
file (as in production). The floor is a minimal Starlette+uvicorn endpoint
measured the same way in the same run, before and after the Warden runs, so
every figure is also reported as a fraction of the floor.

The per-client rate limit is raised for the run (it is still evaluated on every
request, just not reached) so that it measures issuance, not 429s.

`--stacks uvicorn,granian` also serves the same application (`create_app`, same
data, same settings) through other servers, pinned the same way, and measures
ES256 issuance through each, for the "Why this server stack" comparison.

    .venv/bin/python bench/issuance.py [--duration 10] [--clients 100000] [--stacks uvicorn,granian]
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tools import (  # noqa: E402
    RESULTS, VENV_BIN, Process, WrkResult, ensure_python_package, free_port, pin, run_wrk, write_json,
)

ALGS = ("ES256", "RS256", "EdDSA")


def api_for(alg: str) -> str:
    return f"https://{alg.lower()}.bench.example"


def populate(data_dir: str, n_clients: int, used: int) -> list[tuple[str, str]]:
    """Register the bench APIs and `n_clients` clients (bulk insert); return `used` credentials."""
    from sqlalchemy import insert

    from warden.core.clock import SystemClock
    from warden.core.secrets import generate_secret, hash_secret
    from warden.services.admin import Admin
    from warden.services.audit import AuditSink
    from warden.services.kek import load_kek
    from warden.storage import schema
    from warden.storage.engine import open_store

    material = load_kek(None, data_dir)
    store = open_store(None, data_dir)
    store.migrate()
    admin = Admin(store, material, SystemClock(), AuditSink(), actor="bench")
    admin.keyring.ensure_keys()
    for alg in ALGS:
        admin.save_api(api_for(alg), ["read", "write"], alg=alg)
    now = time.time()
    creds: list[tuple[str, str]] = []
    clients, grants, secret_rows = [], [], []
    for i in range(n_clients):
        cid = f"bench-{i:06d}"
        secret = generate_secret(secrets.token_bytes)
        if i < used:
            creds.append((cid, secret))
        clients.append({"client_id": cid, "name": cid, "auth_method": "client_secret_basic", "enabled": True,
                        "tenant": None, "rate_limit": None, "revoked_before": None, "created_at": now})
        for pos, alg in enumerate(ALGS):
            grants.append({"client_id": cid, "api": api_for(alg), "scopes": "read", "position": pos})
        secret_rows.append({"secret_id": f"sec_{i:08x}", "client_id": cid, "hash": hash_secret(material.pepper, secret),
                            "created_at": now, "expires_at": None, "revoked_at": None, "last_used_at": None,
                            "hint": secret[-4:]})
    engine = store._engine  # type: ignore[attr-defined]  # bulk load for the bench only
    with engine.begin() as conn:
        for table, rows in ((schema.clients, clients), (schema.grants, grants), (schema.client_secrets, secret_rows)):
            for start in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[start:start + 5000])
    store.close()
    return creds


def lua_script(path: Path, creds: list[tuple[str, str]], endpoint: str, body: str) -> Path:
    auths = ",\n".join(f'"Basic {base64.b64encode(f"{c}:{s}".encode()).decode()}"' for c, s in creds)
    path.write_text(f"""
local auths = {{ {auths} }}
local n = #auths
local body = "{body}"
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "{endpoint}", {{
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auths[(i % n) + 1],
  }}, body)
end
""")
    return path


def warden_env(data_dir: str, work: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(WARDEN_DATA_DIR=data_dir, WARDEN_AUDIT_SINK=str(work / f"audit-{port}.jsonl"),
               WARDEN_LOG_LEVEL="warning", WARDEN_LIMITS_CLIENT_RATE="1000000",
               WARDEN_LIMITS_CLIENT_BURST="1000000", WARDEN_LIMITS_FAILED_AUTH_PER_MINUTE="1000000")
    return env


def start_warden(data_dir: str, work: Path) -> tuple[Process, str]:
    port = free_port()
    argv = [*pin(0), str(VENV_BIN / "warden"), "serve", "--port", str(port)]
    proc = Process(argv, f"http://127.0.0.1:{port}/readyz", warden_env(data_dir, work, port), work / f"warden-{port}.log")
    return proc, f"http://127.0.0.1:{port}"


def start_stack(stack: str, data_dir: str, work: Path) -> tuple[Process, str]:
    """The Warden application served by another server: uvicorn (httptools, uvloop) or granian (ASGI)."""
    port = free_port()
    env = warden_env(data_dir, work, port) | {"WARDEN_SERVER_PORT": str(port)}
    target = "warden.server.app:create_app"
    if stack == "uvicorn":
        argv = [str(VENV_BIN / "uvicorn"), target, "--factory", "--port", str(port), "--loop", "uvloop", "--http",
                "httptools", "--no-access-log", "--log-level", "warning", "--no-server-header"]
    elif stack == "granian":
        ensure_python_package("granian", "granian>=2.0")
        argv = [str(VENV_BIN / "granian"), "--interface", "asgi", "--factory", "--port", str(port), "--loop",
                "uvloop", "--http", "1", "--workers", "1", "--runtime-mode", "st", "--no-access-log",
                "--log-level", "warning", target]
    else:
        raise SystemExit(f"bench: unknown stack {stack!r} (uvicorn or granian)")
    proc = Process([*pin(0), *argv], f"http://127.0.0.1:{port}/readyz", env, work / f"{stack}-{port}.log")
    return proc, f"http://127.0.0.1:{port}"


def start_floor(work: Path) -> tuple[Process, str]:
    port = free_port()
    argv = [*pin(0), str(VENV_BIN / "uvicorn"), "hello_app:app", "--app-dir", str(Path(__file__).parent),
            "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level",
            "warning"]
    return Process(argv, f"http://127.0.0.1:{port}/", log=work / "floor.log"), f"http://127.0.0.1:{port}/"


def warm(url: str, script: Path | None) -> None:
    run_wrk("warm-up", url, script, 16, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--clients", type=int, default=100_000, help="registry size for the scale run")
    parser.add_argument("--spread", type=int, default=10_000, help="clients the scale run spreads requests over")
    parser.add_argument("--stacks", default="", help="also serve ES256 through these servers: uvicorn,granian")
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args()
    d = args.duration
    work = Path(tempfile.mkdtemp(prefix="warden-bench-"))
    results: list[WrkResult] = []
    memory: dict[str, float] = {}

    floor_proc, floor_url = start_floor(work)
    warm(floor_url, None)
    floor_runs = [run_wrk("floor", floor_url, None, c, d, server=floor_proc) for c in (16, 64)]
    floor_proc.stop()

    small_dir = str(work / "small")
    creds = populate(small_dir, 10, 10)
    warden, url = start_warden(small_dir, work)
    scripts = {alg: lua_script(work / f"{alg}.lua", creds, "/oauth2/token",
                               f"grant_type=client_credentials&resource={api_for(alg)}") for alg in ALGS}
    warm(f"{url}/oauth2/token", scripts["ES256"])
    for c in (16, 64):
        results.append(run_wrk("ES256", f"{url}/oauth2/token", scripts["ES256"], c, d, server=warden))
    for alg in ("RS256", "EdDSA"):
        results.append(run_wrk(alg, f"{url}/oauth2/token", scripts[alg], 16, d, server=warden))
    curve = [run_wrk("ES256", f"{url}/oauth2/token", scripts["ES256"], c, d / 2, server=warden) for c in (1, 4, 8, 32)]
    import httpx

    token = httpx.post(f"{url}/oauth2/token", data={"grant_type": "client_credentials", "resource": api_for("ES256")},
                       auth=creds[0]).json()["access_token"]
    introspect = lua_script(work / "introspect.lua", creds[:1], "/oauth2/introspect", f"token={token}")
    results.append(run_wrk("introspect", f"{url}/oauth2/introspect", introspect, 16, d, server=warden))
    memory["10 clients"] = warden.rss_mb()

    for stack in filter(None, args.stacks.split(",")):
        other, other_url = start_stack(stack, small_dir, work)
        warm(f"{other_url}/oauth2/token", scripts["ES256"])
        for c in (16, 64):
            results.append(run_wrk(f"ES256 via {stack}", f"{other_url}/oauth2/token", scripts["ES256"], c, d,
                                   server=other))
        other.stop()

    if args.clients:
        big_dir = str(work / "big")
        t0 = time.monotonic()
        big_creds = populate(big_dir, args.clients, args.spread)
        load_s = time.monotonic() - t0
        t0 = time.monotonic()
        big, big_url = start_warden(big_dir, work)
        memory[f"{args.clients} clients, seconds to ready"] = round(time.monotonic() - t0, 1)
        script = lua_script(work / "big.lua", big_creds, "/oauth2/token",
                            f"grant_type=client_credentials&resource={api_for('ES256')}")
        warm(f"{big_url}/oauth2/token", script)
        # The 10-client server measured again right before, so the two figures share the machine's conditions.
        results.append(run_wrk("ES256 10 clients, again", f"{url}/oauth2/token", scripts["ES256"], 16, d,
                               server=warden))
        results.append(run_wrk(f"ES256 {args.clients} clients", f"{big_url}/oauth2/token", script, 16, d,
                               server=big))
        memory[f"{args.clients} clients"] = big.rss_mb()
        big.stop()
        print(f"bench: bulk-loaded {args.clients} clients in {load_s:.1f}s", file=sys.stderr)

    warden.stop()

    floor_proc, floor_url = start_floor(work)
    floor_runs += [run_wrk("floor", floor_url, None, c, d, server=floor_proc) for c in (16, 64)]
    floor_curve = [run_wrk("floor", floor_url, None, c, d / 2) for c in (1, 4, 8, 32)]
    floor_proc.stop()

    floor = {c: statistics.mean(r.requests_per_s for r in floor_runs if r.connections == c) for c in (16, 64)}
    rows = []
    for r in floor_runs[:2] + results:
        rows.append(r.as_dict() | {"fraction_of_floor": round(r.requests_per_s / floor[r.connections], 3)
                                   if r.connections in floor else None})
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "duration_s": d, "cpus": os.cpu_count(),
              "floor_rps": floor, "runs": rows, "rss_mb": memory,
              "curve": [r.as_dict() for r in curve], "floor_curve": [r.as_dict() for r in floor_curve]}
    write_json("issuance.json", report)
    print(render_table(report))
    if not args.no_chart:
        chart(report)
    return 0


def render_table(report: dict) -> str:
    lines = [f"issuance ({report['date']}, {report['duration_s']:.0f}s per run, server on 1 pinned core)",
             "| run | conns | req/s | x floor | p50 ms | p90 ms | p99 ms | non-2xx | server CPU µs/req |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        frac = f"{r['fraction_of_floor']:.2f}" if r["fraction_of_floor"] is not None else ""
        cpu = f"{r['server_cpu_us']:.1f}" if r.get("server_cpu_us") is not None else ""
        lines.append(f"| {r['label']} | {r['connections']} | {r['requests_per_s']:.0f} | {frac} | {r['p50_ms']:.2f} | "
                     f"{r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['non_2xx']} | {cpu} |")
    lines.append("")
    lines += [f"resident memory, {k}: {v} MB" for k, v in report["rss_mb"].items()]
    return "\n".join(lines)


def chart(report: dict) -> None:
    ensure_python_package("matplotlib", "matplotlib>=3.8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, name, color in (("curve", "Warden ES256 issuance", "tab:blue"), ("floor_curve", "Starlette hello (floor)",
                                                                               "tab:gray")):
        points = sorted(report[key], key=lambda r: r["connections"])
        xs = [p["requests_per_s"] for p in points]
        ax.plot(xs, [p["p50_ms"] for p in points], "o-", color=color, label=f"{name} p50")
        ax.plot(xs, [p["p99_ms"] for p in points], "s--", color=color, label=f"{name} p99")
        for p in points:
            ax.annotate(f"c={p['connections']}", (p["requests_per_s"], p["p99_ms"]), fontsize=7)
    ax.set_xlabel("throughput (requests/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Latency against load, one server core ({report['date']})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "latency.png", dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
