"""The browser tests' page fixture: Debian's Chromium driven by Playwright, on the local host."""
from __future__ import annotations

import pytest

from tests.browser.pages import CHROMIUM, FLAGS, SHOTS
from tests.demo import CONTOSO
from tests.fixtures.local_host import LOCAL_KEY


@pytest.fixture
def browser_page(app_host, sim, request):
    """``open(tenant=CONTOSO) -> page``: the admin page opened with the key, showing ``tenant``.
    Console errors (a CSP violation among them) fail the test."""
    from playwright.sync_api import sync_playwright

    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: console.append(str(e)))

        def open_page(tenant: str = CONTOSO, *, code: str | None = LOCAL_KEY):
            page.goto(f"{app_host.url}/api/admin" + (f"?code={code}" if code else ""))
            if tenant != CONTOSO:
                page.fill("#tenant", tenant)
                page.dispatch_event("#tenant", "change")
            page.locator("#listSummary").filter(has_text="loaded profiles shown").wait_for()
            return page

        yield open_page
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
        browser.close()
    # A 4xx answer the test asked for is logged by Chromium too; anything else (a script error, a CSP
    # violation) is not expected.
    unexpected = [c for c in console if not c.startswith("Failed to load resource: the server responded with a status of 4")]
    assert unexpected == [], f"console errors: {unexpected}"
