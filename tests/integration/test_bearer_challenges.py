"""Issue 8 #12, RFC 6750 §3.1 over HTTP: the admin API answers a request without credentials (or
with another scheme) with a challenge that carries no error code; a bad token keeps `invalid_token`."""

from __future__ import annotations

import httpx
from tests.integration.conftest import LiveServer


def test_admin_api_without_credentials_gets_no_error_code(server: LiveServer):
    base = f"{server.url}/admin/v1"
    for headers in ({}, {"authorization": "Basic dXNlcjpwYXNz"}):
        resp = httpx.get(f"{base}/clients", headers=headers, timeout=10)
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"] == "Bearer", resp.headers["www-authenticate"]
    bad = httpx.get(f"{base}/clients", headers={"authorization": "Bearer nonsense"}, timeout=10)
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'
