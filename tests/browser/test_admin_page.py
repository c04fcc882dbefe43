"""The admin page in a real browser (Debian's Chromium, driven by Playwright) against the product on
the local host: the profiles list, the spec's form with its notes, the Validation Test with its
troubleshooting, history, a batch job, the account pool, keyboard use and axe-core's checks (app
profiles: ``test_admin_app_profiles.py``).

Needs ``/usr/bin/chromium`` (``.ci/run`` installs it); skipped with that reason elsewhere. Each test
saves a full-page screenshot to ``.local/screenshots/<test>.png``.
"""
import json
import re
import uuid
from pathlib import Path

import pytest

from tests.browser.pages import (AXE, CHROMIUM, SHOTS, axe_violations, create_profile, fill_form,  # noqa: F401
                                 outcome_heading)
from tests.demo import APP_PASSWORD, PASSWORD
from tests.fixtures.local_host import LOCAL_KEY
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")


def test_message_1_shows_steps_evidence_and_the_reserved_ip_download(browser_page):
    page = browser_page()
    fill_form(page, username="blocked@contoso.onmicrosoft.com", password=PASSWORD)
    page.click("#test")
    assert outcome_heading(page) == ("ACCESS_POLICY_BLOCKED: Your organization has set access policies that block "
                                     "the validation.")
    steps = page.locator("#outcome ol.solutions li")
    assert steps.count() == 3 and "reserved IP addresses" in steps.nth(2).inner_text()
    evidence = page.locator("#evidence").inner_text()
    assert "AADSTS53003" in evidence and "Correlation ID" in evidence
    with page.expect_download() as download:
        page.click("#outcomeReservedIps")
    assert download.value.suggested_filename == "reserved-ip-addresses.csv"
    assert Path(download.value.path()).read_text().splitlines() == ["cidr,ipVersion", "203.0.113.0/28,4",
                                                                   "198.51.100.16/29,4"]


def test_mfa_enabled_and_message_2_and_the_previous_result_is_cleared(browser_page):
    page = browser_page()
    fill_form(page, username="mfa@contoso.onmicrosoft.com", password=PASSWORD)
    page.click("#test")
    assert outcome_heading(page) == "MFA_ENABLED: This account has multi-factor authentication enabled."
    assert "AADSTS50076" in page.locator("#evidence").inner_text()
    assert page.locator("#outcomeReservedIps").count() == 0  # the per-user variant does not send to Message 1

    page.fill("#username", "admin@contoso.onmicrosoft.com")
    page.fill("#password", "Wrong-Passw0rd!")
    page.click("#test")
    assert page.locator("#outcome").inner_text().find("MFA_ENABLED") == -1  # cleared when the new test started
    assert outcome_heading(page).startswith("CHECK_MFA_OR_APP_PASSWORD: Check if this account has multi-factor")
    assert "select the Our organization uses multi-factor authentication checkbox" in \
        page.locator("#outcome ol.solutions").inner_text()

    page.fill("#username", "not a upn")
    page.click("#test")
    page.locator("#username-error").filter(has_text="user principal name").wait_for()
    assert page.locator("#outcome").inner_text() == ""  # the failed result is gone, the field error is shown


def test_mfa_box_shows_the_spec_notes_prefills_the_url_and_passes_with_a_blank_role(browser_page, tenant, api):
    page = browser_page(tenant)
    assert page.locator("#mfaLimitations").is_hidden() and page.locator("#usernameMfaNote").is_hidden()
    name = "mfa " + uuid.uuid4().hex[:6]
    page.fill("#name", name)
    page.fill("#username", "mfa@contoso.onmicrosoft.com")
    page.check("#mfaEnabled")
    limitations = page.locator("#mfaLimitations li")
    assert limitations.count() == 3 and "Ghost Guest Users rule" in limitations.nth(1).inner_text()
    assert "Global Administrator account or SharePoint Administrator account" in page.locator("#usernameHint").inner_text()
    assert page.locator("#passwordLabel").inner_text() == "Password (app password)"
    assert page.locator("#passwordMfaHint").is_visible()
    assert page.is_checked("#modeCustom") and page.is_disabled("#modeDefault")
    assert page.input_value("#url") == "https://contoso-admin.sharepoint.com"  # from the tenant's domain
    assert page.locator("#urlMfaNote").is_visible()
    page.fill("#password", APP_PASSWORD)
    page.click("#test")
    assert outcome_heading(page) == "Validation Test passed"
    assert page.input_value("#userRole") == ""
    assert page.locator("#userRoleNote").inner_text().startswith("As the Microsoft 365 user")

    page.click("#save")
    row = page.locator(f"#profiles tbody tr:has-text('{name}')")
    row.wait_for()
    assert "MFA" in row.inner_text() and "mfa@contoso.onmicrosoft.com" in row.inner_text()
    assert re.search(r"\d limitations?", row.locator(".badge.limitations").inner_text())
    assert page.locator("#formTitle").inner_text() == f"Edit {name}"
    assert page.input_value("#password") == ""  # never pre-filled
    assert "Limitations of this profile" in page.locator("#profileLimitations").inner_text()
    assert page.locator("#mfaLimitations").is_hidden()  # the profile's own list replaces the spec's

    page.click("#test")  # the saved profile: stored in its history
    assert outcome_heading(page) == "Validation Test passed"
    page.locator("#history tbody tr:has-text('manual')").wait_for()
    assert "Passed" in page.locator("#history tbody").inner_text()


def test_clearing_the_box_shows_the_conversion_note_and_converts(browser_page, tenant, api):
    name = "convert " + uuid.uuid4().hex[:6]
    create_profile(api, tenant, name, "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True)
    page = browser_page(tenant)
    page.click(f"#profiles button:has-text('{name}')")
    page.locator("#formTitle").filter(has_text=f"Edit {name}").wait_for()
    assert page.locator("#conversionNote").is_hidden()
    page.uncheck("#mfaEnabled")
    assert page.locator("#conversionNote").is_visible()
    assert "common service account profile" in page.locator("#conversionNote").inner_text()
    assert page.locator("#mfaLimitations").is_hidden() and page.is_enabled("#modeDefault")
    page.check("#modeDefault")
    page.fill("#password", PASSWORD)
    page.click("#save")
    page.locator("#converted").wait_for()
    row = page.locator(f"#profiles tbody tr:has-text('{name}')")
    wait_until(lambda: "Common" in row.inner_text(), timeout=10, what="the list shows the converted kind")
    assert "converted" in page.locator("#changes").inner_text()
    assert page.locator("#profileLimitations").is_hidden()


def test_bad_input_shows_field_errors_next_to_the_fields(browser_page):
    page = browser_page()
    page.check("#mfaEnabled")
    page.fill("#url", "")
    page.click("#save")
    page.locator("#name-error").filter(has_text="Enter a name").wait_for()
    assert "login ID" in page.locator("#username-error").inner_text()
    assert page.locator("#password-error").inner_text()
    assert page.locator("#url-error").inner_text()
    assert page.get_attribute("#name", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "name"  # focus goes to the first field to correct


def test_search_and_filters_over_the_list(browser_page, tenant, api):
    tag = uuid.uuid4().hex[:6]
    create_profile(api, tenant, f"alpha {tag}")
    create_profile(api, tenant, f"beta {tag}", "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True)
    page = browser_page(tenant)
    rows = page.locator("#profiles tbody tr")
    wait_until(lambda: rows.count() == 2, timeout=10, what="both profiles listed")
    page.fill("#search", "alpha")
    assert rows.count() == 1 and "alpha" in rows.first.inner_text()
    page.fill("#search", "mfa@")
    assert rows.count() == 1 and "beta" in rows.first.inner_text()
    page.fill("#search", "")
    page.select_option("#kindFilter", "common")
    wait_until(lambda: rows.count() == 1 and "alpha" in rows.first.inner_text(), timeout=10, what="kind filter")
    page.select_option("#kindFilter", "")
    page.select_option("#statusFilter", "passed")
    wait_until(lambda: "No profiles match" in rows.first.inner_text(), timeout=10, what="status filter")


def test_a_batch_job_over_20_profiles_reaches_100_percent(browser_page, tenant, api):
    for i in range(18):
        create_profile(api, tenant, f"batch {i:02d}")
    create_profile(api, tenant, "batch wrong", password="Wrong-Passw0rd!")
    create_profile(api, tenant, "batch reader", "reader@contoso.onmicrosoft.com")
    page = browser_page(tenant)
    page.locator("#startJob").filter(has_text="Validate the 20 listed profiles").wait_for()
    page.click("#startJob")
    page.locator("#jobTitle").filter(has_text="finished").wait_for(timeout=90_000)
    assert page.get_attribute("#jobProgress", "value") == "100"
    assert page.locator("#jobText").inner_text().startswith("20 of 20 validated (100 %): 18 passed, 2 failed")
    summary = page.locator("#jobSummary tbody").inner_text()
    assert "CHECK_MFA_OR_APP_PASSWORD" in summary and "INSUFFICIENT_ROLE" in summary
    wait_until(lambda: page.locator("#profiles tbody .status-passed").count() == 18, timeout=10,
               what="the list shows the new last validations")


def test_account_pool_members_leases_and_resting(browser_page, tenant, api):
    a = create_profile(api, tenant, "pool a", "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True)
    create_profile(api, tenant, "pool b", "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True)
    page = browser_page(tenant)
    page.locator("#pool tbody").filter(has_text="no members").wait_for()
    page.select_option("#poolAdd", a["id"])
    page.click("#poolAddButton")
    member = page.locator(f"#pool tbody tr[data-id='{a['id']}']")
    member.wait_for()
    assert "Healthy" in member.inner_text() and "Free" in member.inner_text()
    lease = api.post(f"/api/tenants/{tenant}/account-pool/leases", json={"leaseSeconds": 600}).json()
    page.click("#poolRefresh")
    wait_until(lambda: "Leased until" in member.inner_text(), timeout=10, what="the lease shown")
    api.delete(f"/api/tenants/{tenant}/account-pool/leases/{lease['leaseId']}", json={"retryAfterSeconds": 120})
    page.click("#poolRefresh")
    wait_until(lambda: "Resting until" in member.inner_text() and "Free" in member.inner_text(), timeout=10,
               what="the resting member shown")
    page.click(f"#pool button[aria-label^='Remove']")
    page.locator("#pool tbody").filter(has_text="no members").wait_for()


def test_keyboard_only_in_the_spec_order(browser_page):
    page = browser_page()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the profile form"
    page.keyboard.press("Enter")
    order = []
    for _ in range(7):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id"))
    # The kind choice (one stop: the chosen radio), then the spec's fields in its order.
    assert order == ["kindCommon", "name", "description", "mfaEnabled", "username", "password", "test"]
    page.focus("#kindCommon")
    page.keyboard.press("ArrowUp")  # arrow keys move within the radio group
    assert page.is_checked("#kindMfa") and page.is_checked("#mfaEnabled") and page.locator("#mfaLimitations").is_visible()
    page.keyboard.press("ArrowDown")
    assert page.is_checked("#kindCommon") and not page.is_checked("#mfaEnabled")
    page.focus("#mfaEnabled")
    page.keyboard.press("Space")
    assert page.locator("#mfaLimitations").is_visible()
    page.focus("#name")
    page.keyboard.type("keyboard " + uuid.uuid4().hex[:4])
    page.focus("#test")
    page.keyboard.press("Enter")
    page.locator("#username-error").filter(has_text="login ID").wait_for()


def test_the_key_is_kept_for_the_session_and_asked_when_missing(browser_page, app_host):
    page = browser_page()
    assert page.evaluate("sessionStorage.getItem('m365profiles.functionKey')") == LOCAL_KEY
    assert page.locator("#keyDialog").is_hidden()
    # The page's calls carry the key in a header, never in a URL.
    with page.expect_request(re.compile(r".*/account-pool$")) as sent:
        page.click("#poolRefresh")
    assert sent.value.headers["x-functions-key"] == LOCAL_KEY and "code=" not in sent.value.url
    page.evaluate("sessionStorage.clear()")
    page.click("#changeKey")
    assert page.locator("#keyDialog").is_visible() and page.evaluate("document.activeElement.id") == "keyInput"
    page.fill("#keyInput", "wrong-key")
    page.click("#keySave")
    page.locator("#keyError").filter(has_text="refused the function key").wait_for()
    page.fill("#keyInput", LOCAL_KEY)
    page.click("#keySave")
    assert page.locator("#keyDialog").is_hidden()
    page.locator("#listSummary").filter(has_text="loaded profiles shown").wait_for()


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (npm ci)")
def test_axe_core_reports_no_serious_or_critical_violation(browser_page, tenant, api):
    create_profile(api, tenant, "axe common")
    create_profile(api, tenant, "axe mfa", "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True)
    page = browser_page(tenant)
    page.locator("#profiles tbody tr:has-text('axe mfa')").wait_for()
    states = {"start": axe_violations(page)}
    page.click("#profiles button:has-text('axe common')")
    page.locator("#historySection").wait_for()
    page.click("#test")
    outcome_heading(page)
    page.check("#mfaEnabled")
    page.click("#startJob")
    page.locator("#jobTitle").filter(has_text="finished").wait_for(timeout=60_000)
    states["profile, outcome, job"] = axe_violations(page)
    page.fill("#username", "")
    page.click("#save")
    page.locator("#username-error").wait_for()
    states["field errors"] = axe_violations(page)
    page.click("#changeKey")
    states["key dialog"] = axe_violations(page)
    (SHOTS.mkdir(parents=True, exist_ok=True), (SHOTS / "axe.json").write_text(json.dumps(states, indent=1)))
    serious = {name: [v for v in found if v[1] in ("serious", "critical")] for name, found in states.items()}
    assert serious == {name: [] for name in states}
