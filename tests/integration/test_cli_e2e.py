"""The operator's path, end to end, with real processes: `warden serve` (several workers, or two
servers on one PostgreSQL), the CLI changing things while they run, curl fetching tokens and PyJWT
validating them against the JWKS."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import pytest
from tests.integration.conftest import free_port, wait_until

WARDEN = [sys.executable, "-m", "warden.cli.main"]
pytestmark = pytest.mark.slow


def run_cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*WARDEN, *args], check=False, env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def cli_json(*args: str, env: dict[str, str]) -> dict:
    return json.loads(run_cli(*args, "--json", env=env).stdout)


class Served:
    def __init__(self, env: dict[str, str], port: int, workers: int = 1, base: str | None = None,
                 verify: ssl.SSLContext | bool = True) -> None:
        self.url = base or f"http://127.0.0.1:{port}"
        self.verify = verify
        self.proc = subprocess.Popen([*WARDEN, "serve", "--port", str(port), "--workers", str(workers)], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ok = wait_until(self._ready, timeout=40, interval=0.2)
        if not ok:
            self.stop()
            raise AssertionError(f"server did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            return True
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1, verify=self.verify).status_code == 200
        except httpx.HTTPError:
            return False

    def token(self, cid: str, secret: str) -> httpx.Response:
        return httpx.post(f"{self.url}/oauth2/token", data={"grant_type": "client_credentials"},
                          auth=(cid, secret), timeout=5)

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM, then wait for the drain: every worker, and the supervisor when there is one, reports
        its shutdown as complete, and the process exits 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        graceful = "shutdown complete" in err
        code = 0 if self.proc.returncode == 0 and graceful else (self.proc.returncode or 1)
        return code, out, err


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env["WARDEN_DATA_DIR"] = str(tmp_path / "data")
    env["WARDEN_AUDIT_SINK"] = str(tmp_path / "audit.jsonl")
    env["WARDEN_REGISTRY_POLL_INTERVAL"] = "0.25"
    # these tests poll with wrong credentials on purpose; throttling is tested elsewhere
    env["WARDEN_LIMITS_FAILED_AUTH_PER_MINUTE"] = "100000"
    return env


def test_curl_token_validates_and_cli_changes_reach_every_worker(cli_env: dict[str, str], tmp_path: Path):
    port = free_port()
    server = Served(cli_env, port, workers=2)
    try:
        cli_json("apis", "create", "https://api.example", "--scopes", "read write", env=cli_env)
        created = cli_json("clients", "create", "billing", "--grant", "https://api.example=read", env=cli_env)
        cid, secret = created["client_id"], created["client_secret"]
        # every worker learns of the new client (each polls the change log on its own)
        assert wait_until(lambda: all(server.token(cid, secret).status_code == 200 for _ in range(6)))
        curl = shutil.which("curl")
        if curl:
            out = subprocess.run([curl, "-s", "-u", f"{cid}:{secret}", "-d", "grant_type=client_credentials",
                                  f"{server.url}/oauth2/token"], check=False, capture_output=True, text=True, timeout=30).stdout
            token = json.loads(out)["access_token"]
        else:
            token = server.token(cid, secret).json()["access_token"]
        key = jwt.PyJWKClient(f"{server.url}/oauth2/jwks").get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["ES256"], audience="https://api.example",
                            issuer=f"http://127.0.0.1:{port}")
        assert claims["client_id"] == cid and claims["scope"] == "read"

        # warden token / warden verify: the client and resource-server libraries behind the CLI
        fetched = cli_json("token", "--issuer", server.url, "--client-id", cid, "--audience", "https://api.example",
                           env=dict(cli_env, WARDEN_CLIENT_SECRET=secret))
        assert fetched["token_type"] == "Bearer" and fetched["scope"] == "read"
        verified = json.loads(run_cli("verify", fetched["access_token"], "--issuer", server.url, "--audience",
                                      "https://api.example", "--scope", "read", env=cli_env).stdout)
        assert verified["client_id"] == cid
        bad = run_cli("verify", fetched["access_token"], "--issuer", server.url, "--audience", "https://other.example",
                      env=cli_env, check=False)
        assert bad.returncode == 1 and bad.stderr.startswith("warden: invalid token")
        assert fetched["access_token"] not in bad.stderr
        wrong = run_cli("token", "--issuer", server.url, "--client-id", cid, env=dict(cli_env, WARDEN_CLIENT_SECRET="x"),
                        check=False)
        assert wrong.returncode == 3 and "invalid_client" in wrong.stderr and wrong.stderr.count("\n") == 1  # 3: authentication refused

        rotated = cli_json("clients", "secrets", "rotate", cid, "--grace", "0", env=cli_env)["client_secret"]
        assert wait_until(lambda: all(server.token(cid, rotated).status_code == 200 for _ in range(6)))
        assert all(server.token(cid, secret).status_code == 401 for _ in range(6))  # every worker refuses

        run_cli("clients", "disable", cid, env=cli_env)
        assert wait_until(lambda: all(server.token(cid, rotated).status_code == 401 for _ in range(6)))

        run_cli("clients", "enable", cid, env=cli_env)
        assert wait_until(lambda: all(server.token(cid, rotated).status_code == 200 for _ in range(6)))
        old_kid = jwt.get_unverified_header(server.token(cid, rotated).json()["access_token"])["kid"]
        run_cli("keys", "rotate", "--alg", "ES256", env=cli_env)
        assert wait_until(lambda: all(jwt.get_unverified_header(server.token(cid, rotated).json()["access_token"])
                                      ["kid"] != old_kid for _ in range(6)))
        metrics = httpx.get(f"{server.url}/metrics").text
        assert "warden_token_requests_total" in metrics
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert secret not in err and rotated not in err
    audit = (tmp_path / "audit.jsonl").read_text()
    assert "token.issued" in audit and "client.disabled" in audit and secret not in audit


def test_two_servers_on_one_postgres_honour_each_others_changes(cli_env: dict[str, str], postgres_url: str,
                                                                make_postgres_schema):
    schema = make_postgres_schema()
    sep = "&" if "?" in postgres_url else "?"
    cli_env = dict(cli_env, WARDEN_DATABASE_URL=f"{postgres_url}{sep}options=-csearch_path%3D{schema}",
                   WARDEN_KEYS_ENCRYPTION_KEY="q3mCUvYsZyQ1XzX5n1QzY4uQ8i7V7Jm2dB9Y9c5Wc0E")
    run_cli("apis", "create", "https://api.example", "--scopes", "read", env=cli_env)
    a = Served(cli_env, free_port())
    b = Served(cli_env, free_port())
    try:
        created = cli_json("clients", "create", "svc", "--grant", "https://api.example=read", env=cli_env)
        cid, secret = created["client_id"], created["client_secret"]
        assert wait_until(lambda: a.token(cid, secret).status_code == 200 and b.token(cid, secret).status_code == 200)
        token = a.token(cid, secret).json()["access_token"]
        key = jwt.PyJWKClient(f"{b.url}/oauth2/jwks").get_signing_key_from_jwt(token)  # same keys on both
        jwt.decode(token, key.key, algorithms=["ES256"], audience="https://api.example")
        run_cli("clients", "disable", cid, env=cli_env)
        assert wait_until(lambda: a.token(cid, secret).status_code == 401 and b.token(cid, secret).status_code == 401)
        # a revocation through one server is honoured by the other
        run_cli("clients", "enable", cid, env=cli_env)
        assert wait_until(lambda: a.token(cid, secret).status_code == 200)
        assert wait_until(lambda: b.token(cid, secret).status_code == 200)
        token = a.token(cid, secret).json()["access_token"]
        assert httpx.post(f"{a.url}/oauth2/revoke", data={"token": token}, auth=(cid, secret)).status_code == 200
        assert wait_until(lambda: httpx.post(f"{b.url}/oauth2/introspect", data={"token": token},
                                             auth=(cid, secret)).json() == {"active": False})
    finally:
        codes = [a.stop()[0], b.stop()[0]]  # stop both before asserting, so neither outlives the test
    assert codes == [0, 0]


def test_cli_errors_are_one_line_with_nonzero_exit(cli_env: dict[str, str], tmp_path: Path):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[[apis]]\nidentifier = 'https://a.example'\nscopes = ['read']\nbogus = 1\n")
    cases = [
        (["apis", "create", "not a uri", "--scopes", "read"], 2),
        (["apis", "create", "https://a.example", "--scopes", "read", "--ttl", "forever"], 2),
        (["clients", "show", "missing"], 1),
        (["clients", "create", "x", "--grant", "nonsense"], 2),
        (["clients", "create", "x", "--auth-method", "magic"], 2),
        (["clients", "secrets", "revoke", "missing", "sec_x"], 1),
        (["tokens", "revoke"], 2),
        (["apply", str(bad_toml)], 2),
        (["apply", str(tmp_path / "missing.toml")], 2),
        (["nonsense"], 2),
        (["serve", "--port", "99999"], 2),
        (["clients", "list", "--database-url", "mysql://x"], 2),
    ]
    assert run_cli("init", env=cli_env).returncode == 0
    for args, code in cases:
        proc = run_cli(*args, env=cli_env, check=False)
        assert proc.returncode == code, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("warden: "), (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_cli_reports_unreachable_postgres_in_one_line(cli_env: dict[str, str]):
    env = dict(cli_env, WARDEN_DATABASE_URL="postgresql://postgres:hunter2@127.0.0.1:1/test")
    proc = run_cli("clients", "list", env=env, check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "hunter2" not in proc.stderr


def _workers(supervisor: int) -> set[int]:
    """The worker processes `warden serve --workers N` spawned (multiprocessing's spawn entry point)."""
    pids = set()
    for task in Path(f"/proc/{supervisor}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    pids.add(int(child))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc to find worker processes")
def test_a_dead_worker_is_replaced_and_metrics_cover_every_worker(cli_env: dict[str, str]):
    port = free_port()
    server = Served(cli_env, port, workers=2)
    try:
        assert wait_until(lambda: len(_workers(server.proc.pid)) == 2, timeout=20)
        cli_json("apis", "create", "https://api.example", "--scopes", "read", env=cli_env)
        created = cli_json("clients", "create", "svc", "--grant", "https://api.example=read", env=cli_env)
        cid, secret = created["client_id"], created["client_secret"]
        assert wait_until(lambda: all(server.token(cid, secret).status_code == 200 for _ in range(6)))
        victim = min(_workers(server.proc.pid))
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(_workers(server.proc.pid) - {victim}) == 2, timeout=30)
        assert wait_until(lambda: all(server.token(cid, secret).status_code == 200 for _ in range(6)), timeout=20)
        metrics = httpx.get(f"{server.url}/metrics").text
        issued = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith('warden_token_requests_total{outcome="issued"'))
        assert issued >= 6  # PROMETHEUS_MULTIPROC_DIR: whichever worker answers reports them all
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert "replacing it" in err


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc to find worker processes")
def test_sighup_replaces_every_worker_without_refusing_requests(cli_env: dict[str, str]):
    port = free_port()
    server = Served(cli_env, port, workers=2)
    try:
        assert wait_until(lambda: len(_workers(server.proc.pid)) == 2, timeout=20)
        old = _workers(server.proc.pid)
        server.proc.send_signal(signal.SIGHUP)
        statuses = []
        assert wait_until(lambda: statuses.append(httpx.get(f"{server.url}/healthz").status_code) is None
                          and len(_workers(server.proc.pid)) == 2 and not _workers(server.proc.pid) & old,
                          timeout=30)
        assert set(statuses) == {200}
        assert wait_until(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, timeout=20)
    finally:
        code, _, err = server.stop()
    assert code == 0, err


def test_limits_hold_once_for_the_whole_server_not_once_per_worker(cli_env: dict[str, str]):
    """`warden serve --workers 2`: a client limited to 5/s, 40 requests over about 2 s on fresh connections
    (which the kernel spreads over both workers), and wrong secrets against a failure budget of 5."""
    env = dict(cli_env, WARDEN_LIMITS_FAILED_AUTH_PER_MINUTE="5")
    server = Served(env, free_port(), workers=2)
    try:
        cli_json("apis", "create", "https://api.example", "--scopes", "read", env=env)
        created = cli_json("clients", "create", "limited", "--grant", "https://api.example=read", "--rate-limit", "5",
                           env=env)
        cid, secret = created["client_id"], created["client_secret"]
        # every worker knows the client (introspection authenticates it without spending its rate limit)
        # (a worker that has not seen the client yet answers 401, which spends the failure budget too)
        probes: list[int] = []

        def known_everywhere() -> bool:
            codes = [httpx.post(f"{server.url}/oauth2/introspect", data={"token": "x"}, auth=(cid, secret),
                                timeout=5).status_code for _ in range(8)]
            probes.extend(codes)
            return all(code == 200 for code in codes)

        assert wait_until(known_everywhere, timeout=20)
        spent = probes.count(401)
        rate, burst = 5.0, 10.0  # a client's own limit allows a burst of two seconds' worth

        host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
        basic = "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()

        def send(at: float) -> int:  # a fresh connection per request; http.client, so sending costs little
            time.sleep(max(0.0, at - time.monotonic()))
            conn = http.client.HTTPConnection(host, port, timeout=10)
            try:
                conn.request("POST", "/oauth2/token", "grant_type=client_credentials",
                             {"authorization": basic, "content-type": "application/x-www-form-urlencoded"})
                return conn.getresponse().status
            finally:
                conn.close()

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(send, [started + i * 0.05 for i in range(40)]))  # 40 requests over 2 s
        elapsed = time.monotonic() - started
        admitted = codes.count(200)
        assert set(codes) <= {200, 429}
        # one bucket for the server: burst + rate * elapsed (21 in 2.1 s); a bucket per worker let 35 through
        assert burst <= admitted <= burst + rate * elapsed + 2, (admitted, elapsed)

        guesses = [server.token(cid, f"guess-{i}").status_code for i in range(20)]
        assert set(guesses) <= {401, 429}
        # one budget of 5 for the server (per worker: 10), less what the readiness probes spent
        assert 5 - spent <= guesses.count(401) <= 6 - spent, (guesses, spent)
        assert guesses[-1] == 429
    finally:
        code, _, err = server.stop()
    assert code == 0, err
