"""App profiles on the admin page, in a real browser against the local stack: the app-profile form
with the simulator's demo-app.pfx uploaded from the browser, the Validation Test with granted and
missing permissions and the admin-consent link, the certificate's download, expiry and rotation, and
**Migrate to app profile** with its next steps; axe-core on each of those states.

The sign-in tests use contoso's own tenant id (the demo app registrations belong to it, and a client
assertion names the tenant it was made for); the others use a tenant alias of their own. Screenshots:
``.local/screenshots/app-*.png`` and one per test.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from tests.browser.pages import AXE, CHROMIUM, SHOTS, axe_violations, create_profile, outcome_heading, screenshot, serious
from tests.demo import APP_PASSWORD, CONTOSO
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")

APP1 = "c0ffee00-0000-4000-8000-000000000001"  # consented: Sites.FullControl.All + User.Read.All
APP2 = "c0ffee00-0000-4000-8000-000000000002"  # no consent


def fill_app_form(page, *, name, client_id, pfx: Path | None = None, password: str | None = None):
    page.check("#kindApp")
    page.fill("#name", name)
    page.fill("#clientId", client_id)
    if pfx is not None:
        page.check("#certUpload")
        page.set_input_files("#pfxFile", str(pfx))
        if password is not None:
            page.fill("#pfxPassword", password)


def save_app(page, name):
    page.click("#save")
    page.locator("#formTitle").filter(has_text=f"Edit app profile {name}").wait_for()


def permissions(page, column):
    """``{"graph": [...], "sharepoint": [...]}`` of the permissions table's column (granted, missing)."""
    cells = {}
    for resource in ("graph", "sharepoint"):
        cell = page.locator(f"#permissions tr[data-resource={resource}] td.{column}")
        cells[resource] = [x.strip() for x in cell.locator("li").all_inner_texts()]
    return cells


def pfx_expiring_in(days: int, password: str = "soon") -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expiring soon")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=300))
            .not_valid_after(now + dt.timedelta(days=days, hours=12)).sign(key, hashes.SHA256()))
    return pkcs12.serialize_key_and_certificates(b"soon", key, cert, None,
                                                 serialization.BestAvailableEncryption(password.encode()))


def test_an_app_profile_from_the_demo_pfx_passes_with_its_granted_permissions(browser_page, sim):
    page = browser_page()
    name = "app backup " + uuid.uuid4().hex[:6]
    page.check("#kindApp")
    assert page.locator("#userFields").is_hidden() and page.locator("#advancedSettings").is_hidden()
    assert page.is_disabled("#test") and page.locator("#testHint").is_visible()  # saved first: Key Vault signs
    assert "Sites.FullControl.All" in page.locator("#workloadHint").inner_text()
    fill_app_form(page, name=name, client_id=APP1, pfx=sim.state_dir / "demo-app.pfx", password="demo")
    assert page.locator("#pfxFields").is_visible()
    assert page.locator("#rotate").is_hidden() and page.locator("#certificateDetails").is_hidden()  # nothing saved yet
    screenshot(page, "app-form")
    with page.expect_request(re.compile(r".*/profiles$")) as sent:
        save_app(page, name)
    body = json.loads(sent.value.post_data)
    assert body["kind"] == "app" and body["clientId"] == APP1 and body["certificate"]["password"] == "demo"
    assert base64.b64decode(body["certificate"]["pfx"]) == (sim.state_dir / "demo-app.pfx").read_bytes()
    assert page.input_value("#pfxPassword") == "" and page.input_value("#pfxFile") == ""  # never kept
    assert page.is_checked("#kindApp") and page.is_disabled("#kindMfa") and page.is_disabled("#kindCommon")
    saved = sent.value.response().json()
    assert saved["guidance"] and page.locator("#appGuidanceSteps > li").all_inner_texts() == saved["guidance"]
    assert page.get_attribute("#appGuidance", "open") is not None  # open until the profile has passed a test
    facts = page.locator("#certificateFacts").inner_text()
    thumbprint = re.search(r"Thumbprint\s+([0-9A-F]{40})", facts).group(1)
    assert re.fullmatch(r"Certificate: \d+ days left\.", page.locator("#certificateExpiry").inner_text())
    assert "Not tested yet" in page.locator("#permissions").inner_text()

    with page.expect_download() as download:
        page.click("#downloadCer")
    cer = x509.load_der_x509_certificate(Path(download.value.path()).read_bytes())
    assert download.value.suggested_filename.endswith(".cer")
    assert cer.fingerprint(hashes.SHA1()).hex().upper() == thumbprint
    with page.expect_download() as download:
        page.click("#downloadPem")
    assert Path(download.value.path()).read_text().startswith("-----BEGIN CERTIFICATE-----")

    page.click("#test")
    assert outcome_heading(page) == "Validation Test passed"
    assert permissions(page, "granted") == {"graph": ["Sites.FullControl.All", "User.Read.All"],
                                            "sharepoint": ["Sites.FullControl.All"]}
    assert permissions(page, "missing") == {"graph": [], "sharepoint": []}
    assert re.fullmatch(r"Certificate: \d+ days left\.", page.locator("#outcomeCertificate").inner_text())
    assert "https://contoso.sharepoint.com" in page.locator("#outcome").inner_text()
    assert page.locator("#roleRow").is_hidden()  # an app has no user role
    page.locator("#history tbody tr:has-text('manual')").wait_for()
    screenshot(page, "app-passed")

    page.click("#rotate")  # generated by Key Vault (the default choice)
    page.locator("#certificateFacts").filter(has_text="Previous certificate").wait_for()
    assert thumbprint in page.locator("#certificateFacts").inner_text()
    assert not re.search(r"Thumbprint\s+" + thumbprint, page.locator("#certificateFacts").inner_text())


def test_the_app_without_consent_shows_app_consent_missing_with_the_consent_link(browser_page, sim):
    page = browser_page()
    name = "app no consent " + uuid.uuid4().hex[:6]
    fill_app_form(page, name=name, client_id=APP2, pfx=sim.state_dir / "demo-app.pfx", password="demo")
    save_app(page, name)
    consent = f"https://login.microsoftonline.com/{CONTOSO}/adminconsent?client_id={APP2}"
    assert page.get_attribute("#consentLink", "href") == consent and page.locator("#consentLink").is_visible()
    page.click("#test")
    assert outcome_heading(page).startswith("APP_CONSENT_MISSING: ")
    assert page.get_attribute("#outcomeConsent", "href") == consent
    assert page.locator(f"#outcome ol.solutions a[href='{consent}']").count() == 1  # the solution's link, clickable
    assert page.get_attribute("#outcomeConsent", "rel") == "noopener noreferrer"
    assert permissions(page, "missing")["graph"] == ["Sites.FullControl.All", "User.Read.All"]
    assert permissions(page, "granted")["graph"] == []  # no roles in the token: no consent
    assert page.locator("#consentRow").is_hidden()  # the outcome carries the link
    screenshot(page, "app-consent-missing")
    if AXE.exists():
        assert serious(axe_violations(page)) == []

    sim.control.patch_app(APP2, {"consented": True})  # what the consent link does in the tenant
    page.click("#test")
    assert outcome_heading(page) == "Validation Test passed"
    assert page.locator("#outcomeConsent").count() == 0


def test_migrating_an_mfa_profile_shows_next_steps_certificate_and_consent(browser_page, tenant, api):
    name = "migrate " + uuid.uuid4().hex[:6]
    create_profile(api, tenant, name, "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True)
    page = browser_page(tenant)
    page.click(f"#profiles button:has-text('{name}')")
    page.locator("#formTitle").filter(has_text=f"Edit {name}").wait_for()
    assert page.is_disabled("#kindApp")  # a saved user profile becomes an app profile by migration
    page.click("#migrate")
    assert page.locator("#migrateDialog").is_visible() and page.evaluate("document.activeElement.id") == "migrateClientId"
    page.keyboard.press("Escape")
    assert page.locator("#migrateDialog").is_hidden()
    page.click("#migrate")
    page.fill("#migrateClientId", "not-a-guid")
    page.click("#migrateSubmit")
    page.locator("#migrateClientId-error").wait_for()
    assert page.get_attribute("#migrateClientId", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "migrateClientId"
    page.fill("#migrateClientId", APP1)
    with page.expect_response(re.compile(r".*/migrate$")) as answered:
        page.click("#migrateSubmit")
    page.locator("#migrationResult").wait_for()
    assert page.locator("#migrateDialog").is_hidden()
    assert page.evaluate("document.activeElement.id") == "migrationResult"
    # the next steps as the service words them, one item each; what they need follows them
    assert page.locator("#nextSteps > li").all_inner_texts() == answered.value.json()["nextSteps"]
    assert "Sites.FullControl.All" in page.locator("#migrationPermissions").inner_text()
    assert page.locator("#appGuidance").is_hidden()  # the same steps: not repeated
    assert page.get_attribute("#migrationConsent", "href") == \
        f"https://login.microsoftonline.com/{tenant}/adminconsent?client_id={APP1}"
    with page.expect_download() as download:
        page.click("#migrationCer")
    x509.load_der_x509_certificate(Path(download.value.path()).read_bytes())
    with page.expect_download() as download:
        page.click("#migrationPem")
    assert Path(download.value.path()).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert page.locator("#formTitle").inner_text() == f"Edit app profile {name}"
    assert page.locator("#downloadCer").is_hidden() and page.locator("#consentRow").is_hidden()  # shown once: above
    assert page.is_checked("#kindApp") and page.input_value("#clientId") == APP1
    assert page.locator("#userFields").is_hidden()
    row = page.locator(f"#profiles tbody tr:has-text('{name}')")
    wait_until(lambda: "App" in row.inner_text() and APP1 in row.inner_text(), timeout=10,
               what="the list shows the app profile with its client id")
    assert "mfa@contoso" not in row.inner_text()  # the client id, not the old username
    assert "migrated" in page.locator("#changes").inner_text()
    screenshot(page, "app-migrated")


def test_a_certificate_expiring_within_30_days_is_warned_about(browser_page, tenant, tmp_path):
    pfx = tmp_path / "soon.pfx"
    pfx.write_bytes(pfx_expiring_in(10))
    page = browser_page(tenant)
    name = "expiring " + uuid.uuid4().hex[:6]
    fill_app_form(page, name=name, client_id=APP1, pfx=pfx, password="soon")
    save_app(page, name)
    expiry = page.locator("#certificateExpiry")
    assert expiry.inner_text().startswith("Certificate: 10 days left: it expires within 30 days.")
    assert page.get_attribute("#certificateExpiry", "class") == "cert-expiring"
    row = page.locator(f"#profiles tbody tr:has-text('{name}')")
    wait_until(lambda: "10 days left" in row.inner_text(), timeout=10, what="the list shows the days left")
    assert row.locator(".cert-expiring").count() == 1


def test_a_wrong_pfx_password_is_shown_at_the_file(browser_page, tenant, sim):
    page = browser_page(tenant)
    fill_app_form(page, name="wrong pfx " + uuid.uuid4().hex[:6], client_id=APP1,
                  pfx=sim.state_dir / "demo-app.pfx", password="not-demo")
    page.click("#save")
    page.locator("#pfxFile-error").wait_for()
    assert page.get_attribute("#pfxFile", "aria-invalid") == "true"
    assert page.input_value("#pfxPassword") == ""  # the password is not kept, even when refused
    page.check("#certGenerate")
    page.fill("#clientId", "")
    page.click("#save")
    page.locator("#clientId-error").wait_for()
    assert page.evaluate("document.activeElement.id") == "clientId"


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (npm ci)")
def test_axe_core_reports_no_serious_or_critical_violation_on_app_profiles(browser_page, tenant, api):
    mfa = create_profile(api, tenant, "axe mfa", "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True)
    r = api.post(f"/api/tenants/{tenant}/profiles", json={"kind": "app", "name": "axe app", "clientId": APP1,
                                                         "certificate": {"generate": True}})
    assert r.status_code == 201, r.text
    page = browser_page(tenant)
    states = {}
    page.check("#kindApp")
    page.check("#certUpload")
    states["new app form"] = axe_violations(page)
    page.click("#profiles button:has-text('axe app')")
    page.locator("#formTitle").filter(has_text="Edit app profile axe app").wait_for()
    page.click("#test")  # a generated certificate the app does not know: CERTIFICATE_NOT_REGISTERED
    outcome_heading(page)
    states["app profile and outcome"] = axe_violations(page)
    page.click("#profiles button:has-text('axe mfa')")
    page.locator("#formTitle").filter(has_text="Edit axe mfa").wait_for()
    page.click("#migrate")
    states["migrate dialog"] = axe_violations(page)
    page.fill("#migrateClientId", APP1)
    page.click("#migrateSubmit")
    page.locator("#migrationResult").wait_for()
    states["migration result"] = axe_violations(page)
    assert api.get(f"/api/tenants/{tenant}/profiles/{mfa['id']}").json()["kind"] == "app"
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "axe-app.json").write_text(json.dumps(states, indent=1))
    assert {k: serious(v) for k, v in states.items()} == {k: [] for k in states}
