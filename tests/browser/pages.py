"""What the browser tests share: where Chromium, axe-core and the screenshots are, and the helpers
that fill the admin page's form and read its outcome."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from tests.demo import PASSWORD

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".local" / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


def fill_form(page, *, name=None, username, password, mfa=False):
    page.fill("#name", name or "p " + uuid.uuid4().hex[:6])
    page.fill("#username", username)
    if mfa:
        page.check("#mfaEnabled")
    page.fill("#password", password)


def outcome_heading(page):
    heading = page.locator("#outcome h3").first
    heading.wait_for()
    return heading.inner_text()


def create_profile(api, tenant, name, username="admin@contoso.onmicrosoft.com", password=PASSWORD, mfa=False):
    body = {"name": name, "username": username, "password": password, "mfaEnabled": mfa}
    if mfa:
        body["adminCenter"] = {"mode": "custom", "url": "https://contoso-admin.sharepoint.com"}
    r = api.post(f"/api/tenants/{tenant}/profiles", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def axe_violations(page):
    page.evaluate(AXE.read_text())  # evaluated by the browser's devtools protocol: the page's CSP stays as served
    result = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result]


def serious(found):
    return [v for v in found if v[1] in ("serious", "critical")]


def screenshot(page, name: str) -> Path:
    """A full-page screenshot saved now (the fixture saves one more at the end of the test)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
