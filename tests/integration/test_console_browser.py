"""The web console in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Skipped, saying why, when /usr/bin/chromium or the playwright package is missing (`.ci/run`
installs chromium; playwright is in the test extra; no browser is ever downloaded). Screenshots
of every page are kept under tmp/artefacts/console/ (the path is printed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import LiveServer, wait_until

CHROMIUM = "/usr/bin/chromium"
ARTEFACTS = Path(__file__).resolve().parents[2] / "tmp" / "artefacts" / "console"

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)", allow_module_level=True)
try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:
    pytest.skip("the playwright package is missing (pip install -e '.[test]')", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Chromium's sandbox cannot start as root (CI containers); the pages are our own.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield chromium
        chromium.close()


@pytest.fixture
def artefacts(capsys: pytest.CaptureFixture[str]) -> Callable[[Page, str], None]:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with capsys.disabled():
        print(f"\nconsole screenshots: {ARTEFACTS}")

    def shoot(page: Page, name: str) -> None:
        page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)

    return shoot


@pytest.fixture
def console(start_server: Callable[..., LiveServer]) -> LiveServer:
    return start_server("sqlite")


def new_page(browser: Browser, violations: list[str]) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text or message.type == "error" else None)
    page.on("pageerror", lambda error: violations.append(str(error)))
    return page


def sign_in(page: Page, live: LiveServer) -> None:
    page.goto(live.admin.issue_console_login(live.url).url)
    page.wait_for_selector("#nav:not([hidden])")
    assert page.url == f"{live.url}/console/"  # the ticket left the address bar


def open_page(page: Page, name: str) -> None:
    page.click(f'nav a[href="#{name}"]')
    page.wait_for_selector(f"#page-{name}:not([hidden])")


def test_sign_in_create_a_client_rotate_its_secret_and_watch_the_charts(
        browser: Browser, console: LiveServer, artefacts: Callable[[Page, str], None]):
    api = console.api("read write")
    busy_id, busy_secret = console.client({api: "read"}, name="busy service")
    violations: list[str] = []
    page = new_page(browser, violations)
    sign_in(page, console)
    assert "Signed in as test" in page.inner_text("#session-info")

    # overview: the token-rate chart moves after token requests
    page.wait_for_function("() => document.querySelector('#chart-rate').dataset.samples >= 1", timeout=20000)
    before = float(page.get_attribute("#chart-rate", "data-total") or 0)
    for _ in range(12):
        assert console.token(busy_id, busy_secret).status_code == 200
    for _ in range(3):
        assert console.token(busy_id, "wrong").status_code == 401
    page.wait_for_function(f"() => Number(document.querySelector('#chart-rate').dataset.total) >= {before + 15}"
                           " && Number(document.querySelector('#chart-rate').dataset.peak) > 0", timeout=20000)
    page.wait_for_function("() => Number(document.querySelector('#chart-errors').dataset.peak) > 0", timeout=20000)
    assert "wrong_secret" in page.inner_text("#error-reasons")
    artefacts(page, "overview")

    # clients: create one, its secret is shown once and works
    open_page(page, "clients")
    page.fill("#new-client-name", "billing")
    page.select_option("#new-client-api", api)
    page.fill("#new-client-scopes", "read")
    page.click("#create-client-form button[type=submit]")
    page.wait_for_selector("#secret-once:not([hidden])")
    first_secret = page.input_value("#secret-once-value")
    created = next(c for c in console.admin.store.load_clients() if c.name == "billing")
    assert page.inner_text("#secret-once-client") == created.client_id
    console.wait_for_client(created.client_id)
    page.click("#secret-once-close")
    assert page.input_value("#secret-once-value") == ""
    page.wait_for_selector("#clients-table >> text=billing")

    # rotate: a new secret, the old one counts down its grace period and, used, raises a warning
    page.click('button[aria-label="Secrets of billing"]')
    page.wait_for_selector("#client-detail:not([hidden])")
    page.fill("#rotate-grace", "2h")
    page.click("#rotate-form button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#secrets-table tbody tr').length === 2", timeout=10000)
    second_secret = page.input_value("#secret-once-value")
    assert second_secret and second_secret != first_secret
    page.click("#secret-once-close")
    page.wait_for_selector("#secrets-table .grace >> text=/in 1h 59m/")
    console.sync()
    assert console.token(created.client_id, second_secret).status_code == 200
    assert console.token(created.client_id, first_secret).status_code == 200  # still in its grace period
    assert wait_until(lambda: any(s.last_used_at for s in console.admin.store.load_secrets(created.client_id)
                                  if s.expires_at), timeout=10)
    page.click('button[aria-label="Secrets of billing"]')  # the list refreshes on every page change too
    open_page(page, "apis")
    open_page(page, "clients")
    page.click('button[aria-label="Secrets of billing"]')
    page.wait_for_selector("#old-secret-warning:not([hidden])", timeout=10000)
    assert "still in use" in page.inner_text("#old-secret-warning")
    artefacts(page, "clients")

    # the other pages render from the admin API
    open_page(page, "apis")
    page.wait_for_selector(f"#apis-table >> text={api}")
    assert "billing (read)" in page.inner_text("#apis-table")
    artefacts(page, "apis")
    open_page(page, "keys")
    page.wait_for_selector("#keys-active li code")
    page.click("#rotate-keys")
    page.wait_for_selector("#status >> text=Rotating signing keys: done.")
    page.wait_for_selector("#keys-retired li code")
    artefacts(page, "keys")
    open_page(page, "revocations")
    page.fill("#revoke-jti", "jti-from-the-console")
    page.click("#revoke-jti-form button[type=submit]")
    page.wait_for_selector("#revoked-tokens >> text=jti-from-the-console")
    artefacts(page, "revocations")
    open_page(page, "audit")
    page.fill("#audit-actor", "console:")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_selector("#audit-table >> text=client.secret_rotated")
    text = page.inner_text("#audit-table")
    assert "client.created" in text and "console:test#" in text and first_secret not in text
    artefacts(page, "audit")

    by_console = {e["event"] for e in console.audit_events() if e.get("actor", "").startswith("console:test#")}
    assert {"console.login", "client.created", "client.secret_rotated", "token.revoked", "key.activated"} <= by_console
    assert violations == []  # no CSP violation, no script error


def test_a_replayed_login_url_is_refused_in_the_browser(
        browser: Browser, console: LiveServer, artefacts: Callable[[Page, str], None]):
    url = console.admin.issue_console_login(console.url).url
    violations: list[str] = []
    first = new_page(browser, violations)
    first.goto(url)
    first.wait_for_selector("#nav:not([hidden])")
    second = new_page(browser, violations)  # another browser profile, same link
    response = second.goto(url)
    assert response is not None and response.status == 400
    assert "already used" in second.inner_text("main")
    artefacts(second, "login-replayed")
    second.goto(f"{console.url}/console/")
    second.wait_for_selector("#page-signed-out:not([hidden])")
    assert second.is_hidden("#nav")
    artefacts(second, "signed-out")


def test_the_console_is_keyboard_usable_and_every_control_is_labelled(browser: Browser, console: LiveServer):
    violations: list[str] = []
    page = new_page(browser, violations)
    sign_in(page, console)
    unlabelled: list[Any] = page.evaluate("""() => [...document.querySelectorAll('input, select, button, textarea')]
        .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !c.textContent.trim())
        .map((c) => c.outerHTML)""")
    assert unlabelled == []
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip"
    page.focus('nav a[href="#clients"]')
    page.keyboard.press("Enter")
    page.wait_for_selector("#page-clients:not([hidden])")
    assert page.evaluate("() => document.activeElement.id") == "h-clients"  # focus moves to the new page's heading
    page.focus("#new-client-name")
    page.keyboard.type("typed")
    page.keyboard.press("Enter")  # submits the form
    page.wait_for_selector("#secret-once:not([hidden])")
    assert any(c.name == "typed" for c in console.admin.store.load_clients())
    assert violations == []



def test_a_tenant_admins_console_shows_only_its_tenant(browser: Browser, console: LiveServer,
                                                       artefacts: Callable[[Page, str], None]):
    import httpx

    api = console.api("read")
    console.admin.save_api("https://globex-only.example", ["read"], tenant="globex")
    console.client({api: "read"}, name="acme billing", tenant="acme")
    console.client({api: "read"}, name="globex billing", tenant="globex")
    admin_api = f"{console.issuer}/admin/v1"
    ops_id, ops_secret = console.client({admin_api: "warden:admin"}, name="acme ops", tenant="acme")
    token = console.token(ops_id, ops_secret, resource=admin_api).json()["access_token"]
    minted = httpx.post(f"{console.url}/admin/v1/console/login-urls", headers={"authorization": f"Bearer {token}"})
    assert minted.status_code == 201
    violations: list[str] = []
    page = new_page(browser, violations)
    page.goto(minted.json()["url"])
    page.wait_for_selector("#nav:not([hidden])")
    assert "(tenant acme)" in page.inner_text("#session-info")
    open_page(page, "clients")
    page.wait_for_selector("#clients-table >> text=acme billing")
    assert "globex" not in page.inner_text("#clients-table")
    open_page(page, "apis")
    page.wait_for_selector(f"#apis-table >> text={api}")
    assert "globex-only" not in page.inner_text("#apis-table") and "shared" in page.inner_text("#apis-table")
    artefacts(page, "tenant-clients")
    assert violations == []


def test_a_client_registered_with_approval_is_approved_from_the_clients_page(browser: Browser, console: LiveServer):
    from warden.core.client_metadata import ClientMetadata
    from warden.services.admin import GrantSpec

    api = console.api("read")
    token, _ = console.admin.create_registration_token([GrantSpec(api, ("read",))], approval=True)
    made = console.admin.register_client(token, "waiting-svc", "client_secret_basic", ClientMetadata(),
                                         [(api, ("read",))])
    assert made is not None
    client, secret, _ = made
    violations: list[str] = []
    page = new_page(browser, violations)
    sign_in(page, console)
    open_page(page, "clients")
    page.wait_for_selector("#clients-table >> text=pending approval")
    page.click('button[aria-label="Approve waiting-svc"]')
    page.wait_for_selector("#clients-table >> text=waiting-svc")
    assert wait_until(lambda: not console.admin.client(client.client_id).metadata.pending_approval)
    page.wait_for_selector('button[aria-label="Approve waiting-svc"]', state="detached")
    assert violations == []
    console.sync()
    assert secret is not None and console.token(client.client_id, secret.secret).status_code == 200
