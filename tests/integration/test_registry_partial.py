"""A registry larger than `registry.cache_size`, over HTTP, with `warden serve --workers 2`.

500 clients are seeded through the storage interface before the server starts, and each worker
may hold 50: every client still gets a token (its first request loads it from the store), changes
made meanwhile (disable, secret rotation, secret revocation, revocation of a client's tokens) are
honoured by every worker after its poll, and a spray of made-up client ids costs a bounded number
of store lookups, read from `warden_registry_store_lookups_total` / `..._lookup_ids_total`.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.integration.conftest import free_port, wait_until

from warden.core.client import Client, Grant
from warden.core.clock import SystemClock
from warden.core.secrets import ClientSecret, generate_secret, hash_secret
from warden.services.admin import Admin
from warden.services.audit import AuditSink
from warden.services.kek import load_kek
from warden.storage.contract import ClientRecord
from warden.storage.engine import open_store

pytestmark = pytest.mark.slow

API = "https://api.partial.example"
CLIENTS = 500
CACHE_SIZE = 50
MISS_RATE = 100  # store lookups per second for the server (the burst is as large)
TRIES = 12  # requests per check: new connections, so both workers answer some


class Seeded:
    def __init__(self, data_dir: Path) -> None:
        store = open_store(None, str(data_dir))
        store.migrate()
        material = load_kek(None, str(data_dir))
        self.admin = Admin(store, material, SystemClock(), AuditSink(), actor="test")
        self.admin.keyring.ensure_keys()
        self.admin.save_api(API, ["read"])
        now = time.time()
        self.creds: dict[str, str] = {}
        records = []
        for i in range(CLIENTS):
            client_id, secret = f"p-{i:04d}", generate_secret(secrets.token_bytes)
            self.creds[client_id] = secret
            records.append(ClientRecord(Client(client_id, client_id, created_at=now),
                                        (Grant(client_id, API, ("read",), 0),),
                                        (ClientSecret(f"ps-{i:04d}", client_id, hash_secret(material.pepper, secret),
                                                      now, hint=secret[-4:]),)))
        store.create_clients(records)


class Server:
    def __init__(self, data_dir: Path, tmp_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(WARDEN_DATA_DIR=str(data_dir), WARDEN_AUDIT_SINK=str(tmp_path / "audit.jsonl"),
                   WARDEN_REGISTRY_POLL_INTERVAL="0.1", WARDEN_REGISTRY_CACHE_SIZE=str(CACHE_SIZE),
                   WARDEN_REGISTRY_MISS_RATE=str(MISS_RATE), WARDEN_REGISTRY_NEGATIVE_TTL="10m",
                   WARDEN_LIMITS_FAILED_AUTH_PER_MINUTE="1000000")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "warden.cli.main", "serve", "--port", str(port),
                                      "--workers", "2"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        assert wait_until(self._ready, timeout=60, interval=0.2), "server did not start"
        assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            return True
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def token(self, client_id: str, secret: str) -> httpx.Response:
        return httpx.post(f"{self.url}/oauth2/token", data={"grant_type": "client_credentials"},
                          auth=(client_id, secret), timeout=10)

    def every_worker(self, client_id: str, secret: str, status: int) -> bool:
        """`TRIES` requests on new connections all answer `status` (503 budget refusals are retried)."""
        seen = []
        for _ in range(TRIES):
            response = self.token(client_id, secret)
            while response.status_code == 503:
                time.sleep(float(response.headers["retry-after"]))
                response = self.token(client_id, secret)
            seen.append(response.status_code)
        return all(code == status for code in seen)

    def counter(self, name: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
                   if line.split("{")[0].split(" ")[0] == name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Seeded, Server]]:
    data_dir = tmp_path / "data"
    seeded = Seeded(data_dir)
    server = Server(data_dir, tmp_path)
    try:
        yield seeded, server
    finally:
        server.stop()


def test_every_client_of_a_registry_larger_than_the_cache_gets_a_token(served: tuple[Seeded, Server]) -> None:
    seeded, server = served
    refused: list[str] = []
    with httpx.Client(timeout=10) as http:
        def token(client_id: str, secret: str) -> httpx.Response:
            return http.post(f"{server.url}/oauth2/token", data={"grant_type": "client_credentials"},
                             auth=(client_id, secret))

        for client_id, secret in seeded.creds.items():
            response = token(client_id, secret)
            while response.status_code == 503:  # the lookup budget: come back after Retry-After
                assert response.json()["error"] == "temporarily_unavailable"
                time.sleep(float(response.headers["retry-after"]))
                response = token(client_id, secret)
            if response.status_code != 200:
                refused.append(client_id)
    assert refused == []
    assert server.token("p-0001", "wsec_wrong").status_code == 401


def test_changes_reach_every_worker_for_cached_and_uncached_clients(served: tuple[Seeded, Server]) -> None:
    seeded, server = served
    admin, creds = seeded.admin, seeded.creds
    cached = ["p-0010", "p-0011", "p-0012", "p-0013"]  # asked for first, so each worker holds them
    for client_id in cached:
        assert server.every_worker(client_id, creds[client_id], 200)
    token = server.token("p-0013", creds["p-0013"]).json()["access_token"]
    # The same four changes, to clients the workers hold and to clients they have never seen.
    for disabled, rotated, revoked, tokens_revoked in (cached, ["p-0400", "p-0401", "p-0402", "p-0403"]):
        admin.update_client(disabled, enabled=False)
        new = admin.rotate_secret(rotated, grace=0)
        admin.revoke_secret(revoked, f"ps-{int(revoked[2:]):04d}")
        admin.revoke_client_tokens(tokens_revoked)
        assert wait_until(lambda d=disabled: server.every_worker(d, creds[d], 401), timeout=10)
        assert wait_until(lambda r=rotated: server.every_worker(r, creds[r], 401), timeout=10)
        assert server.every_worker(rotated, new.secret, 200)
        assert wait_until(lambda r=revoked: server.every_worker(r, creds[r], 401), timeout=10)
        assert server.every_worker(tokens_revoked, creds[tokens_revoked], 200)  # new tokens are fine
    # The token issued before its client's tokens were revoked is inactive on every worker.
    def inactive() -> bool:
        return all(not httpx.post(f"{server.url}/oauth2/introspect", data={"token": token},
                                  auth=("p-0013", creds["p-0013"]), timeout=10).json()["active"]
                   for _ in range(TRIES))
    assert wait_until(inactive, timeout=10)


def test_a_spray_of_unknown_client_ids_makes_a_bounded_number_of_store_lookups(
        served: tuple[Seeded, Server]) -> None:
    _seeded, server = served
    ghosts = [f"ghost-{i:04d}" for i in range(300)]
    queries0, ids0 = (server.counter("warden_registry_store_lookups_total"),
                      server.counter("warden_registry_store_lookup_ids_total"))
    started = time.monotonic()
    answers: dict[int, int] = {}
    with httpx.Client(timeout=10) as http:
        for _ in range(2):  # the same ids twice: the second time they are remembered as unknown
            for ghost in ghosts:
                response = http.post(f"{server.url}/oauth2/token", data={"grant_type": "client_credentials"},
                                     auth=(ghost, "wsec_made-up"))
                answers[response.status_code] = answers.get(response.status_code, 0) + 1
                assert response.json()["error"] in ("invalid_client", "temporarily_unavailable")
                if response.status_code == 503:
                    assert "retry-after" in response.headers
    elapsed = time.monotonic() - started
    queries = server.counter("warden_registry_store_lookups_total") - queries0
    ids = server.counter("warden_registry_store_lookup_ids_total") - ids0
    assert set(answers) <= {401, 503} and answers.get(401, 0) > 0
    # Each worker asks for an id at most once while it remembers it (10 minutes), and the server
    # asks for at most its budget: the burst plus the rate over the time the spray took.
    assert ids <= min(2 * len(ghosts), MISS_RATE + MISS_RATE * elapsed)
    assert 0 < queries <= ids
    assert sum(answers.values()) == 2 * len(ghosts)
