"""The admin page in a real browser (Debian's Chromium, driven by Playwright) against the product on
the local host: the spec's form, the Validation Test with its troubleshooting message, Save.

Needs ``/usr/bin/chromium`` (``.ci/run`` installs it); skipped with that reason elsewhere.
"""
import shutil
import uuid

import pytest

from tests.fixtures.local_host import LOCAL_KEY

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page(app_host, sim, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(f"{app_host.url}/api/admin?code={LOCAL_KEY}")
        yield page
        page.screenshot(path=str(tmp_path / "admin.png"), full_page=True)
        browser.close()


def test_validation_test_shows_message_1_with_its_solutions(page):
    page.fill("#name", "blocked " + uuid.uuid4().hex[:6])
    page.fill("#username", "blocked@contoso.onmicrosoft.com")
    page.fill("#password", "Demo-Passw0rd!")
    page.click("#test")
    heading = page.locator("#outcome h2")
    heading.wait_for()
    assert heading.inner_text() == ("ACCESS_POLICY_BLOCKED: Your organization has set access policies that block "
                                    "the validation.")
    assert "reserved IP addresses" in page.locator("#outcome ul").inner_text()


def test_mfa_profile_passes_saves_and_shows_its_limitations(page, tenant):
    page.fill("#tenant", tenant)  # it saves a profile: in this test's own tenant
    name = "mfa " + uuid.uuid4().hex[:6]
    page.fill("#name", name)
    page.check("#mfaEnabled")
    assert page.locator("#passwordLabel").inner_text() == "Password (app password)"
    assert "Global Administrator account or SharePoint Administrator account" in page.locator("#usernameHint").inner_text()
    page.fill("#username", "mfa@contoso.onmicrosoft.com")
    page.fill("#password", "qwertyuiopasdfgh")
    page.fill("#url", "https://contoso-admin.sharepoint.com")
    page.click("#test")
    page.locator("#outcome h2.passed").wait_for()
    assert page.locator("#outcome p").first.inner_text().startswith("User Role: — As the Microsoft 365 user")
    page.click("#save")
    page.locator(f"#profiles li:has-text('{name}')").wait_for()
    assert "Limitations:" in page.locator("#limitations").inner_text()
    assert page.locator("#formTitle").inner_text() == f"Edit {name}"


def test_field_errors_are_shown(page):
    page.check("#mfaEnabled")
    page.click("#save")
    errors = page.locator("#errors")
    errors.locator("div").first.wait_for()
    text = errors.inner_text()
    assert "name:" in text and "username:" in text and "password:" in text
