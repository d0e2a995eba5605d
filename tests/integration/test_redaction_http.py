"""Issue 8 #8: a secret sent in the wrong field (swapped `client_id` / secret) never reaches the
audit log or the server's log, whatever endpoint receives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.integration.conftest import LiveServer, free_port, wait_until

WARDEN = [sys.executable, "-m", "warden.cli.main"]


def _swapped_requests(http: httpx.Client, url: str, cid: str, secret: str) -> None:
    token = f"{url}/oauth2/token"
    grant = {"grant_type": "client_credentials"}
    assert http.post(token, data=grant, auth=(secret, cid)).status_code == 401  # Basic, swapped
    assert http.post(token, data={**grant, "client_id": secret, "client_secret": cid}).status_code == 401
    assert http.post(token, data={**grant, "client_id": secret}).status_code in (400, 401)  # no secret at all
    assert http.post(token, data={**grant, "client_id": f"prefix-{secret}-suffix"}).status_code in (400, 401)
    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        assert http.post(f"{url}{path}", data={"token": "x"}, auth=(secret, cid)).status_code == 401


def test_a_secret_in_the_client_id_field_is_not_audited(sqlite_server: LiveServer):
    server = sqlite_server
    cid, secret = server.client_when_ready({server.api(): "read"})
    _swapped_requests(server.http, server.url, cid, secret)
    events = server.audit_events()
    failed = [e for e in events if e["event"] == "client.authentication_failed"]
    named = [e["client_id"] for e in failed if "client_id" in e]
    assert len(named) >= 4, failed
    assert all(c.count("wsec_[redacted]") == 1 for c in named), named
    assert secret not in json.dumps(events)
    assert secret[5:] not in server.audit_path.read_text()


@pytest.mark.slow
def test_warden_serve_logs_and_audits_no_swapped_secret(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(WARDEN_DATA_DIR=str(tmp_path / "data"), WARDEN_AUDIT_SINK="stderr", WARDEN_LOG_LEVEL="debug",
               WARDEN_REGISTRY_POLL_INTERVAL="0.1", WARDEN_LIMITS_FAILED_AUTH_PER_MINUTE="100000")

    def cli(*args: str) -> dict:
        proc = subprocess.run([*WARDEN, *args, "--json"], check=False, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([*WARDEN, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None
        assert wait_until(ready, timeout=40, interval=0.2)
        cli("apis", "create", "https://api.example", "--scopes", "read")
        created = cli("clients", "create", "billing", "--grant", "https://api.example=read")
        cid, secret = created["client_id"], created["client_secret"]
        with httpx.Client(timeout=5) as http:
            assert wait_until(lambda: http.post(f"{url}/oauth2/token", data={"grant_type": "client_credentials"},
                                                auth=(cid, secret)).status_code == 200)
            _swapped_requests(http, url, cid, secret)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert "client.authentication_failed" in err  # the audit events went to stderr, with the log
    assert "wsec_[redacted]" in err
    assert secret not in out + err
    assert secret[5:] not in out + err
