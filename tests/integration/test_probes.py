"""The Validation Test through the real msal/requests against the simulator (DESIGN §6 demo tenants).

``M365AccountProbe`` talks to Microsoft's real host names; the ``local`` cloud's session maps them to
the simulator. Request counts come from the simulator's per-endpoint counters.
"""
from __future__ import annotations

import json
import logging

import pytest

from shared.adapters.m365_probe import M365AccountProbe
from shared.config import Settings
from shared.domain.profile import AdminCenter, AdminCenterMode, Password
from shared.domain.validation import USER_ROLE_NOTE_MFA, ValidationForm
from shared.contract.validation import outcome_json
from shared.domain.validation_test import run_validation_test

from tests.demo import ADATUM, APP_PASSWORD, CONTOSO, FABRIKAM, LITWARE, NORTHWIND, PASSWORD, TAILSPIN
CONTOSO_ADMIN = "https://contoso-admin.sharepoint.com"


@pytest.fixture
def settings(sim_settings) -> Settings:
    return Settings.from_env(sim_settings)


@pytest.fixture
def probe(settings, sim_session) -> M365AccountProbe:
    return M365AccountProbe(settings, sim_session)


@pytest.fixture
def validate(sim, probe, settings):
    """Run one Validation Test; returns (outcome, requests per simulator endpoint)."""

    def run(tenant, username, password=PASSWORD, *, mfa=False, url=None, correlation_id="cid-integration",
            warm=False, fault=None, **kw):
        form = ValidationForm(tenant, username, Password(password), mfa,
                              AdminCenter(AdminCenterMode.CUSTOM, url) if url else AdminCenter())
        if warm:  # discovery (OpenID configuration, user realm) is once per process: pay it first
            run_validation_test(form, probe=probe, reserved_ip_ranges=settings.reserved_ip_ranges,
                                correlation_id="warm-up")
        if fault:
            sim.control.add_fault(fault.pop("endpoint"), count=1, **fault)
        sim.control.clear_counters()
        outcome = run_validation_test(form, probe=probe, reserved_ip_ranges=settings.reserved_ip_ranges,
                                      correlation_id=correlation_id, **kw)
        counts = {name: c["requests"] for name, c in sim.control.counters().items() if c["requests"]}
        return outcome, counts

    return run


# --- MFA off: modern sign-in -------------------------------------------------------------------

@pytest.mark.parametrize("user,status,message_id,role", [
    ("admin", "passed", None, "Global Administrator"),
    ("spadmin", "passed", None, "SharePoint Administrator"),
    ("reader", "failed", "INSUFFICIENT_ROLE", "other"),
    ("mfa", "failed", "MFA_ENABLED", None),
    ("blocked", "failed", "ACCESS_POLICY_BLOCKED", None),
    ("locked", "failed", "ACCOUNT_LOCKED", None),
    ("expired", "failed", "PASSWORD_EXPIRED", None),
    ("disabled", "failed", "ACCOUNT_DISABLED", None),
    ("nobody", "failed", "USER_NOT_FOUND", None),
    ("device", "failed", "ACCESS_POLICY_BLOCKED", None),
    ("domainjoined", "failed", "ACCESS_POLICY_BLOCKED", None),
    ("mfareg", "failed", "MFA_ENABLED", None),
])
def test_demo_users_with_mfa_off(validate, user, status, message_id, role):
    outcome, _ = validate(CONTOSO, f"{user}@contoso.onmicrosoft.com")
    assert (outcome.status, outcome.message_id, outcome.user_role) == (status, message_id, role)
    assert outcome.evidence.sign_in_path == "modern"
    if message_id and message_id != "INSUFFICIENT_ROLE":
        assert outcome.evidence.aadsts_code and outcome.evidence.trace_id


def test_per_user_mfa_gets_the_per_user_variant(validate):
    outcome, _ = validate(CONTOSO, "mfa@contoso.onmicrosoft.com")
    assert outcome.evidence.aadsts_code == "AADSTS50076"
    assert outcome.solutions[0] == ("If this account has multi-factor authentication enabled on the multi-factor "
                                    "authentication interface, either select the Our organization uses multi-factor "
                                    "authentication checkbox in the Enable MFA field or disable multi-factor "
                                    "authentication for the Microsoft 365 user.")
    assert len(outcome.solutions) == 2 and "migrate it to an app profile" in outcome.solutions[1]


def test_conditional_access_mfa_gets_the_conditional_access_variant(validate):
    outcome, _ = validate(CONTOSO, "camfa@contoso.onmicrosoft.com")
    assert outcome.message_id == "MFA_ENABLED"
    assert outcome.solutions[0].startswith("If your Microsoft 365 tenant has enabled multi-factor authentication "
                                           "in Microsoft Entra conditional access policies")


def test_blocked_location_names_the_reserved_ranges(validate, settings):
    outcome, _ = validate(CONTOSO, "blocked@contoso.onmicrosoft.com")
    assert outcome.evidence.aadsts_code == "AADSTS53003"
    assert ", ".join(settings.reserved_ip_ranges) in outcome.cause


def test_wrong_password_is_message_2_and_always_reaches_entra(validate):
    for _ in range(2):  # msal would cache the 400 for 60 s; a validation must test the password again
        outcome, counts = validate(CONTOSO, "admin@contoso.onmicrosoft.com", "wrong-password", warm=True)
        assert (outcome.status, outcome.message_id) == ("failed", "CHECK_MFA_OR_APP_PASSWORD")
        assert counts == {"entra.token": 1}


def test_app_password_with_mfa_off(validate):
    outcome, _ = validate(CONTOSO, "mfa@contoso.onmicrosoft.com", APP_PASSWORD)
    assert outcome.message_id == "CHECK_MFA_OR_APP_PASSWORD"
    assert "shape of an app password" in outcome.cause


def test_modern_path_costs_token_and_member_of(validate):
    outcome, counts = validate(CONTOSO, "admin@contoso.onmicrosoft.com", warm=True)
    assert outcome.passed and counts == {"entra.token": 1, "graph": 1}
    assert outcome.evidence.upstream_requests == 2


def test_tokens_are_not_reused_between_validations(sim, validate):
    assert validate(CONTOSO, "spadmin@contoso.onmicrosoft.com")[0].passed
    sim.control.patch_user("spadmin@contoso.onmicrosoft.com", {"password": "Changed-Passw0rd!"})
    outcome, counts = validate(CONTOSO, "spadmin@contoso.onmicrosoft.com")
    assert outcome.message_id == "CHECK_MFA_OR_APP_PASSWORD" and counts["entra.token"] == 1


def test_correlation_id_reaches_entra(sim, validate):
    validate(CONTOSO, "admin@contoso.onmicrosoft.com", correlation_id="cid-trace-me")
    assert sim.control.signins("admin@contoso.onmicrosoft.com")[-1]["correlationId"] == "cid-trace-me"


def test_unknown_tenant(validate):
    outcome, counts = validate("99999999-9999-4999-8999-999999999999", "admin@contoso.onmicrosoft.com")
    assert (outcome.message_id, outcome.evidence.aadsts_code) == ("TENANT_NOT_FOUND", "AADSTS90002")
    assert counts == {"entra.discovery": 1}


# --- MFA on: legacy SharePoint sign-in ----------------------------------------------------------

def test_mfa_account_with_app_password_passes_with_blank_role(validate, sim_session):
    outcome, counts = validate(CONTOSO, "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True, url=CONTOSO_ADMIN)
    assert outcome.status == "passed" and outcome.message_id is None
    assert outcome.user_role is None and outcome.user_role_note == USER_ROLE_NOTE_MFA
    assert counts == {"sharepoint.sts": 1, "sharepoint.signin": 1, "sharepoint.api": 1}
    assert outcome.evidence.upstream_requests == 3
    assert len(sim_session.cookies) == 0  # FedAuth/rtFa never land in the shared session


@pytest.mark.parametrize("tenant,user,url,message_id,code", [
    (FABRIKAM, "mfa@fabrikam.onmicrosoft.com", "https://fabrikam-admin.sharepoint.com", "LEGACY_AUTH_RETIRED",
     "IDCRL_RETIRED"),
    (NORTHWIND, "mfa@northwind.onmicrosoft.com", "https://northwind-admin.sharepoint.com", "LEGACY_AUTH_RETIRED",
     "IDCRL_RETIRED"),
    (TAILSPIN, "mfa@tailspin.onmicrosoft.com", "https://tailspin-admin.sharepoint.com", "LEGACY_AUTH_RETIRED",
     "IDCRL_RETIRED"),
])
def test_legacy_sign_in_refused_after_the_retirement_date(validate, tenant, user, url, message_id, code):
    # Today (after May 1, 2026) every refusal at wsignin1.0 after a good token is the retirement.
    outcome, _ = validate(tenant, user, APP_PASSWORD, mfa=True, url=url)
    assert (outcome.status, outcome.message_id, outcome.evidence.error_code) == ("failed", message_id, code)
    assert outcome.evidence.step == "wsignin" and outcome.evidence.http_status == 403
    assert outcome.limitations == ("NO_GHOST_GUEST_USERS_RULE",)
    assert outcome.user_role is None


@pytest.mark.parametrize("day, message_id, code", [("2026-04-30", "LEGACY_AUTH_BLOCKED", "SP_NO_AUTH_COOKIE"),
                                                   ("2026-05-01", "LEGACY_AUTH_RETIRED", "IDCRL_RETIRED")])
def test_the_date_of_the_answer_decides(sim, validate, day, message_id, code):
    sim.control.patch_scenario({"settings": {"date": day}})
    outcome, _ = validate(FABRIKAM, "mfa@fabrikam.onmicrosoft.com", APP_PASSWORD, mfa=True,
                          url="https://fabrikam-admin.sharepoint.com")
    assert (outcome.message_id, outcome.evidence.error_code, outcome.evidence.step) == (message_id, code, "wsignin")
    assert day in outcome.cause and "HTTP 403" in outcome.cause


def test_retired_explains_the_migration(validate):
    outcome, counts = validate(FABRIKAM, "mfa@fabrikam.onmicrosoft.com", APP_PASSWORD, mfa=True,
                               url="https://fabrikam-admin.sharepoint.com")
    assert "MC1184649" in outcome.cause and counts == {"sharepoint.sts": 1, "sharepoint.signin": 1}
    assert any("Sites.FullControl.All" in s for s in outcome.solutions)
    assert "modern authentication in the SharePoint admin center" not in outcome.cause


def test_re_enabled_legacy_sign_in_still_works(validate):
    outcome, _ = validate(LITWARE, "mfa@litware.onmicrosoft.com", APP_PASSWORD, mfa=True,
                          url="https://litware-admin.sharepoint.com")
    assert outcome.passed


@pytest.mark.parametrize("user,password,message_id,code", [
    ("mfa", "Wrong-app-pass", "INVALID_APP_PASSWORD", "AADSTS50126"),
    ("mfa", "aaaaaaaaaaaaaaaa", "INVALID_APP_PASSWORD", "AADSTS50126"),
    ("mfa", PASSWORD, "INVALID_APP_PASSWORD", "AADSTS50076"),
    ("reader", PASSWORD, "INSUFFICIENT_ROLE", "SP_FORBIDDEN"),
    ("blocked", PASSWORD, "ACCESS_POLICY_BLOCKED", "AADSTS53003"),
    ("nobody", APP_PASSWORD, "USER_NOT_FOUND", "AADSTS50034"),
])
def test_legacy_failures(validate, user, password, message_id, code):
    outcome, _ = validate(CONTOSO, f"{user}@contoso.onmicrosoft.com", password, mfa=True, url=CONTOSO_ADMIN)
    assert (outcome.message_id, outcome.evidence.error_code) == (message_id, code)
    assert outcome.user_role is None and outcome.user_role_note == USER_ROLE_NOTE_MFA


def test_normal_password_with_mfa_on_is_explained(validate):
    outcome, _ = validate(CONTOSO, "mfa@contoso.onmicrosoft.com", PASSWORD, mfa=True, url=CONTOSO_ADMIN)
    assert "not an app password" in outcome.cause


def test_security_defaults_block_the_legacy_sign_in(validate):
    outcome, _ = validate(ADATUM, "admin@adatum.onmicrosoft.com", PASSWORD, mfa=True,
                          url="https://adatum-admin.sharepoint.com")
    assert (outcome.message_id, outcome.evidence.aadsts_code) == ("ACCESS_POLICY_BLOCKED", "AADSTS530035")
    assert outcome.cause.startswith("Security defaults are on")


def test_wrong_admin_center_url(validate):
    outcome, counts = validate(CONTOSO, "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True,
                               url="https://contoso-wrong-admin.sharepoint.com")
    assert (outcome.message_id, outcome.evidence.http_status) == ("ADMIN_CENTER_UNREACHABLE", 404)
    assert {c.name: c.status for c in outcome.checks}["adminCenter"] == "failed"
    assert counts == {"sharepoint.sts": 1, "sharepoint.signin": 1}


def test_admin_center_outside_sharepoint_is_never_contacted(validate):
    outcome, counts = validate(CONTOSO, "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True,
                               url="https://contoso-admin.example.net")
    assert outcome.message_id == "ADMIN_CENTER_UNREACHABLE" and counts == {}


def test_mfa_without_custom_url_sends_nothing(validate):
    outcome, counts = validate(CONTOSO, "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True)
    assert outcome.message_id == "ADMIN_CENTER_URL_REQUIRED" and counts == {}


# --- throttling, outages, timeouts -----------------------------------------------------------------

def test_429_with_long_retry_after_is_throttled(sim, validate):
    outcome, counts = validate(CONTOSO, "admin@contoso.onmicrosoft.com", warm=True,
                               fault={"endpoint": "entra.token", "status": 429, "retryAfter": 30})
    assert (outcome.status, outcome.message_id) == ("error", "THROTTLED")
    assert outcome.evidence.retry_after_seconds == 30 and outcome.evidence.http_status == 429
    assert counts == {"entra.token": 1}


def test_429_with_short_retry_after_is_retried_once(sim, validate):
    outcome, counts = validate(CONTOSO, "admin@contoso.onmicrosoft.com", warm=True,
                               fault={"endpoint": "entra.token", "status": 429, "retryAfter": 1})
    assert outcome.passed and counts == {"entra.token": 2, "graph": 1}


def test_sharepoint_throttling(validate):
    outcome, _ = validate(CONTOSO, "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True, url=CONTOSO_ADMIN,
                          fault={"endpoint": "sharepoint.api", "status": 429, "retryAfter": 45})
    assert (outcome.message_id, outcome.evidence.step, outcome.retry_after_seconds) == ("THROTTLED", "contextinfo", 45)


@pytest.mark.parametrize("endpoint,fault", [
    ("entra.token", {"status": 503}),
    ("graph", {"status": 503, "retryAfter": 60}),
    ("sharepoint.sts", {"status": 503, "retryAfter": 120}),
])
def test_503_is_service_unavailable(validate, endpoint, fault):
    mfa = endpoint.startswith("sharepoint")
    outcome, _ = validate(CONTOSO, ("mfa" if mfa else "admin") + "@contoso.onmicrosoft.com",
                          APP_PASSWORD if mfa else PASSWORD, mfa=mfa, url=CONTOSO_ADMIN if mfa else None,
                          warm=True, fault=dict(fault, endpoint=endpoint))
    assert (outcome.status, outcome.message_id, outcome.evidence.http_status) == ("error", "SERVICE_UNAVAILABLE", 503)
    assert outcome.evidence.retry_after_seconds == fault.get("retryAfter")


def test_connection_reset_is_service_unavailable(sim, validate):
    sim.control.set_outage("reset", seconds=30)
    try:
        outcome, _ = validate(CONTOSO, "admin@contoso.onmicrosoft.com", warm=False)
    finally:
        sim.control.clear_outage()
    assert (outcome.status, outcome.message_id) == ("error", "SERVICE_UNAVAILABLE")


def test_timeout_is_service_unavailable(sim, sim_settings, sim_session, validate):
    validate(CONTOSO, "admin@contoso.onmicrosoft.com")  # warm the process-wide discovery cache
    impatient = M365AccountProbe(Settings.from_env(dict(sim_settings, UPSTREAM_TIMEOUT_SECONDS="1")), sim_session)
    sim.control.add_fault("entra.token", latencyMs=2500, count=1)
    outcome = run_validation_test(
        ValidationForm(CONTOSO, "admin@contoso.onmicrosoft.com", Password(PASSWORD)), probe=impatient,
        reserved_ip_ranges=(), correlation_id="cid-timeout")
    assert (outcome.status, outcome.message_id, outcome.evidence.error_code) == ("error", "SERVICE_UNAVAILABLE", "TIMEOUT")


# --- secrets --------------------------------------------------------------------------------

CANARY = "Canary-Pa55word-7f3a9c"


@pytest.mark.parametrize("mfa", [False, True])
def test_canary_password_stays_in_the_sign_in_request(validate, caplog, mfa):
    caplog.set_level(logging.DEBUG)
    outcome, _ = validate(CONTOSO, "admin@contoso.onmicrosoft.com", CANARY, mfa=mfa,
                          url=CONTOSO_ADMIN if mfa else None)
    assert outcome.message_id in ("CHECK_MFA_OR_APP_PASSWORD", "INVALID_APP_PASSWORD")
    for text in (str(outcome), json.dumps(outcome_json(outcome)), caplog.text):
        assert CANARY not in text


# --- the adapters' wire parsing (no simulator) ---------------------------------------------------

def test_msal_keeps_discovery_but_no_failed_sign_in(validate):
    from shared.adapters.entra_sign_in import cached_discovery_urls

    validate(CONTOSO, "admin@contoso.onmicrosoft.com", "wrong-password")
    urls = cached_discovery_urls()  # msal's own http_cache keeps nothing; discovery GETs are kept by us
    assert any(CONTOSO in u and "openid-configuration" in u for u in urls)
    assert any("/userrealm/admin@contoso.onmicrosoft.com" in u for u in urls)
    assert not any(u.endswith("/token") for u in urls)


def test_one_discovery_per_authority_when_threads_start_at_once(sim, probe):
    from concurrent.futures import ThreadPoolExecutor

    from shared.adapters.entra_sign_in import forget_msal_apps

    forget_msal_apps()  # a cold process
    sim.control.clear_counters()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: probe.sign_in_modern(
            CONTOSO, "admin@contoso.onmicrosoft.com", Password(PASSWORD), correlation_id=f"cid-{i}"), range(8)))
    counts = {name: c["requests"] for name, c in sim.control.counters().items() if c["requests"]}
    assert all(r.ok and r.step == "token" for r in results)
    assert counts["entra.discovery"] == 1 and counts["entra.token"] == 8
    sim.control.clear_counters()
    assert probe.sign_in_modern(CONTOSO, "admin@contoso.onmicrosoft.com", Password(PASSWORD),
                                correlation_id="cid-again").requests == 1  # discovery stays cached
    assert {n for n, c in sim.control.counters().items() if c["requests"]} == {"entra.token"}


@pytest.mark.parametrize("url,origin", [
    ("https://contoso-admin.sharepoint.com", "https://contoso-admin.sharepoint.com"),
    ("https://Contoso-Admin.SharePoint.com/_layouts/15/online/AdminHome.aspx", "https://contoso-admin.sharepoint.com"),
    ("https://contoso-admin.sharepoint.com:443/", "https://contoso-admin.sharepoint.com"),
    ("http://contoso-admin.sharepoint.com", None),
    ("https://contoso-admin.sharepoint.com:8443", None),
    ("https://evil.com/contoso-admin.sharepoint.com", None),
    ("https://contoso-admin.sharepoint.com.evil.com", None),
    ("https://user@contoso-admin.sharepoint.com", None),
    ("https://a.b.sharepoint.com", None),
    ("not a url", None),
])
def test_admin_center_urls_are_limited_to_sharepoint(url, origin):
    from shared.adapters.sharepoint_legacy_sign_in import SharePointLegacySignIn
    from shared.cloud import endpoints_for

    assert SharePointLegacySignIn(None, endpoints_for("public")).admin_origin(url) == origin


def test_sts_envelope_escapes_the_credentials():
    from xml.etree import ElementTree

    from shared.adapters.sharepoint_legacy_sign_in import NS, issue_request

    body = issue_request('o\'k"<&>@contoso.com', 'p<&>"\'w', sts_url="https://login.microsoftonline.com/extSTS.srf",
                         applies_to=CONTOSO_ADMIN)
    root = ElementTree.fromstring(body)
    assert root.findtext(".//wsse:Password", namespaces=NS) == 'p<&>"\'w'
    assert root.findtext(".//{http://www.w3.org/2005/08/addressing}Address", namespaces=NS) is not None


@pytest.mark.parametrize("content,code", [
    (b"<html><body>Sign-in page</body></html>", "STS_INVALID_RESPONSE"),
    (b"not xml at all", "STS_INVALID_RESPONSE"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "STS_INVALID_RESPONSE"),
    (b'<S:Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope"><S:Body><S:Fault><S:Reason>'
     b'<S:Text>Authentication Failure</S:Text></S:Reason></S:Fault></S:Body></S:Envelope>', "STS_FAULT"),
    (b'<S:Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope" '
     b'xmlns:psf="http://schemas.microsoft.com/Passport/SoapServices/SOAPFault"><S:Body><S:Fault><S:Detail>'
     b'<psf:error><psf:internalerror><psf:text>AADSTS50126: Error validating credentials due to invalid '
     b'username or password.</psf:text></psf:internalerror></psf:error></S:Detail></S:Fault></S:Body>'
     b'</S:Envelope>', "AADSTS50126"),
])
def test_sts_answers_are_parsed(content, code):
    from shared.adapters.sharepoint_legacy_sign_in import parse_issue_response

    token, error, description = parse_issue_response(content)
    assert token is None and error == code and description


def test_retry_after_forms():
    from datetime import datetime, timezone

    from shared.adapters.upstream_http import parse_retry_after

    now = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Mon, 01 Jun 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Mon, 01 Jun 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
