"""Name the policy on the admin page, in a real browser against the local stack: a failed Validation
Test of a saved profile shows an **Explanation** next to the spec's message. It says it is looking in
the tenant's sign-in log (a live region), the page then looks at the profile's validation history until
the follow-up has named the policy, and shows the blocking policy (name, id, state, failed controls,
the Microsoft-managed badge) with the suggested change as the first, marked, solution; the history
shows it too. Without a diagnosis app profile the explanation says which permissions are missing.
After two minutes without an entry the page says it is still pending and offers to look again.

The diagnosis app profile is created through the API in the test's own tenant alias (the explanation
follow-up signs in as it for Graph). Screenshots: ``.local/screenshots/explanation-*.png``.
"""
from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.apps import DIAGNOSIS_APP, add_app_profile
from tests.browser.pages import AXE, CHROMIUM, SHOTS, axe_violations, create_profile, outcome_heading, screenshot, serious
from tests.demo import PASSWORD
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")

BLOCKED = "blocked@contoso.onmicrosoft.com"
MMPOLICY = "mmpolicy@contoso.onmicrosoft.com"
LOCATION_POLICY = "Block sign-in outside trusted locations"
MANAGED_POLICY = "Multifactor authentication for per-user multifactor authentication users"
RESERVED = "203.0.113.0/28"


def add_diagnosis_app(api, sim, tenant):
    add_app_profile(api, sim, tenant, DIAGNOSIS_APP, name="diagnosis")


def open_and_test(browser_page, tenant, name):
    page = browser_page(tenant)
    page.click(f"#profiles button:has-text('{name}')")
    page.locator("#formTitle").filter(has_text=f"Edit {name}").wait_for()
    page.click("#test")
    outcome_heading(page)
    return page


def element_shot(page, selector, name):
    """A screenshot of one part of the page (the outcome, the history), to look at the block itself."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(selector).screenshot(path=str(SHOTS / f"{name}.png"))


def explanation_state(page):
    return page.get_attribute("#explanation", "data-state")


def keep_pending(page):
    """Answer the page's history looks with every explanation still pending (the entry not arrived)."""
    def handle(route):
        response = route.fetch()
        body = response.json()
        for item in body["items"]:
            if item.get("explanation"):
                item["explanation"] = {**item["explanation"], "state": "pending", "policies": [],
                                       "suggestedChange": None, "securityDefaults": None}
        route.fulfill(response=response, body=json.dumps(body))

    page.route(re.compile(r".*/validations$"), handle)


def test_the_blocking_location_policy_and_the_trusted_location_change_are_shown(browser_page, api, sim, tenant):
    add_diagnosis_app(api, sim, tenant)
    name = "blocked " + uuid.uuid4().hex[:6]
    create_profile(api, tenant, name, BLOCKED, PASSWORD)
    page = open_and_test(browser_page, tenant, name)
    assert page.locator("#outcome h3").first.inner_text().startswith("ACCESS_POLICY_BLOCKED: ")
    status = page.locator("#explanationStatus")
    assert page.get_attribute("#explanationStatus", "role") == "status"  # the live region announces the change
    assert status.inner_text() == "Looking in the tenant's sign-in log…"
    assert explanation_state(page) == "pending"
    screenshot(page, "explanation-pending")
    element_shot(page, "#outcome", "explanation-pending-outcome")

    page.locator("#explanation[data-state=explained]").wait_for(timeout=60_000)
    assert status.inner_text() == "Named from the tenant's sign-in log: this Conditional Access policy blocked the sign-in."
    (policy,) = page.locator("#explanation li.policy").all()
    assert policy.locator(".policy-name strong").inner_text() == LOCATION_POLICY
    assert policy.locator(".badge.managed").count() == 0
    assert policy.locator(".policy-state").inner_text() == "On (enabled)"
    assert "Block access (block)" in policy.locator(".failed-controls").inner_text()
    policy_id = policy.locator(".policy-id").inner_text()
    assert re.fullmatch(r"[0-9a-f-]{36}", policy_id)
    # the suggested change is the first step of the solutions, marked; the spec's solutions follow
    first = page.locator("#outcome ol.solutions > li").first
    assert first.get_attribute("id") == "suggestedChange" and first.get_attribute("data-kind") == "trustedLocation"
    assert first.locator(".badge.suggested").inner_text() == "Suggested change for this account"
    assert RESERVED in first.inner_text() and LOCATION_POLICY in first.inner_text()
    assert page.locator("#outcome ol.solutions > li").count() > 1
    assert page.locator("#outcome h3").first.inner_text() == \
        "ACCESS_POLICY_BLOCKED: Your organization has set access policies that block the validation."
    # the validation history shows it too
    row = page.locator("#history tbody tr").first
    wait_until(lambda: LOCATION_POLICY in row.inner_text(), timeout=10, what="the history row names the policy")
    assert row.locator(".explanation[data-state=explained] p.suggested").count() == 1
    assert RESERVED in row.locator("p.suggested").inner_text()
    screenshot(page, "explanation-explained")
    element_shot(page, "#outcome", "explanation-explained-outcome")
    element_shot(page, "#historySection", "explanation-explained-history")
    if AXE.exists():
        assert serious(axe_violations(page)) == []


def test_a_microsoft_managed_policy_gets_its_badge(browser_page, api, sim, tenant):
    add_diagnosis_app(api, sim, tenant)
    name = "mmpolicy " + uuid.uuid4().hex[:6]
    create_profile(api, tenant, name, MMPOLICY, PASSWORD)
    page = open_and_test(browser_page, tenant, name)
    page.locator("#explanation[data-state=explained]").wait_for(timeout=60_000)
    (policy,) = page.locator("#explanation li.policy").all()
    assert policy.locator(".policy-name strong").inner_text().endswith(MANAGED_POLICY)
    assert policy.locator(".badge.managed").inner_text() == "Microsoft-managed"
    assert "Require multifactor authentication (mfa)" in policy.locator(".failed-controls").inner_text()
    change = page.locator("#suggestedChange")
    assert change.get_attribute("data-kind") == "excludeUser" and MMPOLICY in change.inner_text()
    screenshot(page, "explanation-managed")
    element_shot(page, "#explanation", "explanation-managed-block")


def test_without_a_diagnosis_app_profile_the_missing_permissions_are_shown(browser_page, api, tenant):
    name = "blocked " + uuid.uuid4().hex[:6]
    create_profile(api, tenant, name, BLOCKED, PASSWORD)
    page = open_and_test(browser_page, tenant, name)
    assert explanation_state(page) == "unavailable"
    assert page.locator("#explanationStatus").inner_text() == "The policy could not be named."
    assert "add an app profile" in page.locator("#explanation .explanation-reason").inner_text()
    assert page.locator("#explanation ul.missing li").all_inner_texts() == ["AuditLog.Read.All", "Policy.Read.All"]
    assert page.locator("#suggestedChange").count() == 0  # no change is made up: the spec's solutions stay
    row = page.locator("#history tbody tr").first
    wait_until(lambda: "AuditLog.Read.All" in row.inner_text(), timeout=10, what="the history row says what is missing")
    screenshot(page, "explanation-unavailable")
    element_shot(page, "#outcome", "explanation-unavailable-outcome")
    if AXE.exists():
        assert serious(axe_violations(page)) == []


def test_after_two_minutes_pending_the_page_says_so_and_can_look_again(browser_page, api, sim, tenant):
    add_diagnosis_app(api, sim, tenant)
    name = "late " + uuid.uuid4().hex[:6]
    create_profile(api, tenant, name, BLOCKED, PASSWORD)
    page = browser_page(tenant)
    page.clock.install()  # time flows as usual until the test jumps it
    keep_pending(page)
    page.click(f"#profiles button:has-text('{name}')")
    page.locator("#formTitle").filter(has_text=f"Edit {name}").wait_for()
    page.click("#test")
    outcome_heading(page)
    assert explanation_state(page) == "pending"
    with page.expect_request(re.compile(r".*/validations$")):  # the page keeps looking meanwhile
        pass
    page.clock.fast_forward("02:05")
    page.locator("#explanation[data-state=stillPending]").wait_for(timeout=20_000)
    assert page.locator("#explanationStatus").inner_text().startswith("Still pending after 2 minutes")
    looks = []
    page.on("request", lambda r: looks.append(r.url) if r.url.endswith("/validations") else None)
    page.clock.fast_forward("00:30")
    page.locator("#explanationRetry").wait_for()
    assert looks == []  # bounded: no more looks after the two minutes
    screenshot(page, "explanation-still-pending")
    element_shot(page, "#explanation", "explanation-still-pending-block")
    if AXE.exists():
        assert serious(axe_violations(page)) == []

    page.unroute(re.compile(r".*/validations$"))
    page.focus("#explanationRetry")
    page.keyboard.press("Enter")  # keyboard: the button looks again
    assert explanation_state(page) in ("pending", "explained")
    page.locator("#explanation[data-state=explained]").wait_for(timeout=60_000)
    assert LOCATION_POLICY in page.locator("#explanation").inner_text()
