"""The web console over plain HTTP: sign-in, cookie flags, CSP, CSRF refusals, session expiry,
and the console's admin API endpoints (audit, revocations, login URLs)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextlib import closing
from typing import Any

import httpx
import pytest
from tests.integration.conftest import LiveServer

from warden.cli.main import main
from warden.core.clock import FixedClock
from warden.services.console_login import ConsoleLogins
from warden.services.kek import load_kek


@pytest.fixture
def console(start_server: Callable[..., LiveServer]) -> LiveServer:
    return start_server("sqlite")


def login_url(live: LiveServer, *, can_write: bool = True) -> str:
    return live.admin.issue_console_login(live.url, can_write=can_write).url


def path_of(url: str) -> str:
    return url[url.index("/console/"):]


def sign_in(live: LiveServer, **options: Any) -> tuple[httpx.Client, str]:
    """A client holding a console session, and the session's CSRF token from the page."""
    browser = httpx.Client(base_url=live.url, timeout=10)
    response = browser.get(path_of(login_url(live, **options)))
    assert response.status_code == 303
    page = browser.get("/console/")
    csrf = re.search(r'name="warden-csrf" content="([^"]+)"', page.text)
    assert csrf
    return browser, csrf.group(1)


def test_login_url_sets_a_strict_http_only_cookie_and_redirects_away_from_the_ticket(console: LiveServer):
    url = login_url(console)
    assert url.startswith(f"{console.url}/console/login?t=wcl_")
    response = console.http.get(f"{console.url}{path_of(url)}")
    assert response.status_code == 303 and response.headers["location"] == "/console/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("warden_console=")
    flags = {part.strip().split("=")[0] for part in cookie.split(";")[1:]}
    assert {"HttpOnly", "SameSite", "Path", "Max-Age"} <= flags and "Secure" not in flags  # http issuer
    assert "SameSite=Strict" in cookie and "Path=/" in cookie
    assert response.headers["referrer-policy"] == "no-referrer"
    events = [e for e in console.audit_events() if e["event"] == "console.login"]
    assert events[-1]["outcome"] == "success" and events[-1]["actor"].startswith("console:test#")
    assert "wcl_" not in json.dumps(console.audit_events())  # the ticket never reaches the audit log


def test_a_replayed_login_url_is_refused(console: LiveServer):
    url = f"{console.url}{path_of(login_url(console))}"
    assert console.http.get(url).status_code == 303
    again = console.http.get(url)
    assert again.status_code == 400 and "set-cookie" not in again.headers
    assert "already used" in again.text
    failures = [e for e in console.audit_events() if e["event"] == "console.login" and e["outcome"] == "failure"]
    assert failures[-1]["reason"] == "ticket_replayed"


def test_a_forged_or_expired_login_url_is_refused(console: LiveServer):
    material = load_kek(None, console.settings.data_dir)
    old = ConsoleLogins(material, FixedClock(0.0), console.url).issue_login_url("test")  # expired in 1970
    assert console.http.get(f"{console.url}{path_of(old.url)}").status_code == 400
    forged = path_of(login_url(console))[:-3] + "AAA"
    assert console.http.get(f"{console.url}{forged}").status_code == 400
    assert console.http.get(f"{console.url}/console/login").status_code == 400


def test_console_pages_carry_a_strict_content_security_policy(console: LiveServer):
    for path in ("/console/", "/console/assets/console.js", "/console/assets/console.css"):
        response = console.http.get(f"{console.url}{path}")
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    page = console.http.get(f"{console.url}/console/").text
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []  # no inline script
    assert "<style" not in page and " style=" not in page and "http://" not in page.replace(
        "http://www.w3.org", "")  # no inline style, nothing from elsewhere
    assert console.http.get(f"{console.url}/console").status_code == 308
    assert console.http.get(f"{console.url}/console/assets/../settings.py").status_code == 404


def test_admin_api_calls_with_the_session_need_its_csrf_token(console: LiveServer):
    browser, csrf = sign_in(console)
    with closing(browser):
        assert browser.get("/admin/v1/clients").status_code == 403  # cookie alone
        assert browser.get("/admin/v1/clients", headers={"x-warden-csrf": "x" * len(csrf)}).status_code == 403
        refused = browser.post("/admin/v1/clients", json={"name": "forged"})
        assert refused.status_code == 403 and refused.json()["error"] == "invalid_request"
        assert browser.post("/admin/v1/clients", json={"name": "forged"},
                            headers={"x-warden-csrf": csrf, "sec-fetch-site": "cross-site"}).status_code == 403
        ok = browser.post("/admin/v1/clients", json={"name": "from the console"}, headers={"x-warden-csrf": csrf})
        assert ok.status_code == 201, ok.text
    assert [c.name for c in console.admin.store.load_clients()] == ["from the console"]
    created = [e for e in console.audit_events() if e["event"] == "client.created"]
    assert created[-1]["actor"].startswith("console:test#")


def test_another_sessions_csrf_token_does_not_work(console: LiveServer):
    first, csrf = sign_in(console)
    second, _ = sign_in(console)
    with closing(first), closing(second):
        assert second.get("/admin/v1/clients", headers={"x-warden-csrf": csrf}).status_code == 403


def test_an_expired_session_is_refused(console: LiveServer):
    material = load_kek(None, console.settings.data_dir)
    stale = ConsoleLogins(material, FixedClock(1000.0), console.url)
    session, cookie = stale.open_session("test", True)
    headers = {"cookie": f"warden_console={cookie}", "x-warden-csrf": stale.csrf_token(session)}
    response = console.http.get(f"{console.url}/admin/v1/clients", headers=headers)
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    assert console.http.get(f"{console.url}/console/session", headers=headers).status_code == 401
    page = console.http.get(f"{console.url}/console/", headers=headers).text
    assert 'content=""' in page  # no CSRF token handed out for an expired session


def test_a_read_only_session_cannot_change_anything(console: LiveServer):
    browser, csrf = sign_in(console, can_write=False)
    with closing(browser):
        assert browser.get("/admin/v1/clients", headers={"x-warden-csrf": csrf}).status_code == 200
        assert browser.post("/admin/v1/clients", json={"name": "x"},
                            headers={"x-warden-csrf": csrf}).status_code == 403


def test_logout_clears_the_cookie_and_needs_the_csrf_token(console: LiveServer):
    browser, csrf = sign_in(console)
    with closing(browser):
        assert browser.post("/console/logout").status_code == 403
        response = browser.post("/console/logout", headers={"x-warden-csrf": csrf})
        assert response.status_code == 204 and "Max-Age=0" in response.headers["set-cookie"]


def test_https_issuer_gets_a_secure_host_prefixed_cookie(start_server: Callable[..., LiveServer]):
    live = start_server("sqlite", issuer="https://auth.example")
    response = live.http.get(f"{live.url}{path_of(live.admin.issue_console_login(live.issuer).url)}")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-warden_console=") and "; Secure" in cookie and "HttpOnly" in cookie


def test_console_off_answers_404(start_server: Callable[..., LiveServer]):
    live = start_server("sqlite", **{"console.enabled": False})
    assert live.http.get(f"{live.url}/console/").status_code == 404
    assert live.http.get(f"{live.url}{path_of(login_url(live))}").status_code == 404


def test_audit_revocations_and_login_urls_over_the_admin_api(console: LiveServer):
    browser, csrf = sign_in(console)
    api = console.api("read")
    client_id, _ = console.client({api: "read"}, name="audited")
    console.admin.revoke_client_tokens(client_id)
    console.admin_audit.flush()  # the test's own admin writes to the server's audit file
    with closing(browser):
        headers = {"x-warden-csrf": csrf}
        audit = browser.get("/admin/v1/audit", params={"event": "client.", "client_id": client_id},
                            headers=headers).json()
        assert audit["available"] and {e["event"] for e in audit["events"]} == {"client.created",
                                                                               "client.tokens_revoked"}
        assert browser.get("/admin/v1/audit", params={"limit": "x"}, headers=headers).status_code == 400
        revoked = browser.get("/admin/v1/revocations", headers=headers).json()
        assert [c["client_id"] for c in revoked["clients"]] == [client_id]
        # a session cannot mint itself new sign-in URLs
        assert browser.post("/admin/v1/console/login-urls", headers=headers).status_code == 403
    ops_id, ops_secret = console.client({f"{console.issuer}/admin/v1": "warden:admin"}, name="ops")
    token = console.token(ops_id, ops_secret, resource=f"{console.issuer}/admin/v1").json()["access_token"]
    minted = console.http.post(f"{console.url}/admin/v1/console/login-urls",
                               headers={"authorization": f"Bearer {token}"})
    assert minted.status_code == 201, minted.text
    opened = console.http.get(f"{console.url}{path_of(minted.json()['url'])}")
    assert opened.status_code == 303
    logins = [e for e in console.audit_events() if e["event"] == "console.login" and e["outcome"] == "success"]
    assert logins[-1]["actor"].startswith(f"console:client:{ops_id}#")


def test_cli_console_login_url_prints_a_working_url(console: LiveServer, capsys, monkeypatch):
    monkeypatch.setenv("WARDEN_AUDIT_SINK", str(console.audit_path))
    code = main(["console", "login-url", "--data-dir", console.settings.data_dir, "--issuer", console.url,
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["url"].startswith(f"{console.url}/console/login?t=wcl_")
    assert console.http.get(f"{console.url}{path_of(out['url'])}").status_code == 303


def _mint(live: LiveServer, admin_id: str, secret: str) -> str:
    """A console sign-in URL minted over the admin API by the admin client `admin_id`."""
    admin_api = f"{live.issuer}/admin/v1"
    token = live.token(admin_id, secret, resource=admin_api).json()["access_token"]
    minted = live.http.post(f"{live.url}/admin/v1/console/login-urls", headers={"authorization": f"Bearer {token}"})
    assert minted.status_code == 201, minted.text
    url: str = minted.json()["url"]
    return url


def _tenant_admin_session(live: LiveServer, tenant: str) -> tuple[httpx.Client, str, str, str]:
    """A console session opened from a URL minted by a new admin client of `tenant`:
    (browser, csrf token, the admin client's id and secret)."""
    admin_id, secret = live.client({f"{live.issuer}/admin/v1": "warden:admin"}, name=f"{tenant}-ops", tenant=tenant)
    browser = httpx.Client(base_url=live.url, timeout=10)
    assert browser.get(path_of(_mint(live, admin_id, secret))).status_code == 303
    csrf = re.search(r'name="warden-csrf" content="([^"]+)"', browser.get("/console/").text)
    assert csrf
    return browser, csrf.group(1), admin_id, secret


def test_a_tenant_admins_console_lists_and_changes_only_its_tenant(console: LiveServer):
    api = console.api("read")
    mine, _ = console.client({api: "read"}, name="alpha app", tenant="alpha")
    theirs, _ = console.client({api: "read"}, name="beta app", tenant="beta")
    untenanted, _ = console.client({api: "read"}, name="global app")
    browser, csrf, admin_id, admin_secret = _tenant_admin_session(console, "alpha")
    with closing(browser):
        headers = {"x-warden-csrf": csrf}
        session = browser.get("/console/session").json()
        assert session["tenant"] == "alpha" and session["operator"] == f"client:{admin_id}"
        listed = {c["client_id"] for c in browser.get("/admin/v1/clients", headers=headers).json()["items"]}
        assert listed == {mine, admin_id}
        assert browser.get(f"/admin/v1/clients/{theirs}", headers=headers).status_code == 404
        assert browser.get(f"/admin/v1/clients/{untenanted}", headers=headers).status_code == 404
        moved = browser.patch(f"/admin/v1/clients/{mine}", headers=headers, json={"tenant": "beta"})
        assert moved.status_code == 403 and moved.json()["error"] == "forbidden"
        made = browser.post("/admin/v1/clients", headers=headers, json={"name": "made in the console"})
        assert made.status_code == 201 and made.json()["tenant"] == "alpha"
        events = browser.get("/admin/v1/audit", headers=headers, params={"limit": 1000}).json()["events"]
        assert events and {e["tenant"] for e in events} == {"alpha"}
        assert theirs not in str(events) and untenanted not in str(events)
        # the session has its admin client's reach, now: disabling the client ends it
        assert any(e["event"] == "console.login" for e in events)  # its own sign-in, with its tenant
        unused = _mint(console, admin_id, admin_secret)
        # the session has its admin client's reach, now: disabling the client ends it, and its unused URLs
        console.admin.update_client(admin_id, enabled=False)
        console.sync()
        assert browser.get("/admin/v1/clients", headers=headers).status_code == 401
        assert browser.get("/console/session").json() == {"signed_in": False}
        late = console.http.get(f"{console.url}{path_of(unused)}")
        assert late.status_code == 400 and "set-cookie" not in late.headers and "disabled or deleted" in late.text


def test_a_global_console_session_still_lists_every_tenant(console: LiveServer):
    api = console.api("read")
    ids = {console.client({api: "read"}, tenant=t)[0] for t in ("alpha", "beta")}
    browser, csrf = sign_in(console)  # `warden console login-url`: the local operator, global
    with closing(browser):
        assert browser.get("/console/session").json()["tenant"] is None
        listed = {c["client_id"] for c in browser.get("/admin/v1/clients",
                                                      headers={"x-warden-csrf": csrf}).json()["items"]}
        assert ids <= listed
