"""The Validation Test service with a scripted probe: paths, request counts, Retry-After, secrets."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import pytest

from shared.domain.profile import AdminCenter, AdminCenterMode, Password
from shared.domain.validation import USER_ROLE_NOTE_MFA, ValidationForm
from shared.contract.validation import outcome_json
from shared.domain.validation_test import run_validation_test
from tests.fakes_validation import GA, GLOBAL_READER, SPA, FakeAccountProbe, failed, ok

TENANT = "11111111-1111-4111-8111-111111111111"
ADMIN_URL = "https://contoso-admin.sharepoint.com"
RANGES = ("203.0.113.0/28", "198.51.100.16/29")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def modern(username="admin@contoso.onmicrosoft.com", password="Demo-Passw0rd!"):
    return ValidationForm(TENANT, username, Password(password))


def legacy(password="qwertyuiopasdfgh", url=ADMIN_URL):
    return ValidationForm(TENANT, "mfa@contoso.onmicrosoft.com", Password(password), mfa_enabled=True,
                          admin_center=AdminCenter(AdminCenterMode.CUSTOM, url) if url else AdminCenter())


class Clock:
    def __init__(self):
        self.t, self.slept = 100.0, []

    def timer(self):
        return self.t

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.t += seconds


def run(form, probe, **kw):
    clock = kw.pop("clock", None) or Clock()
    kw.setdefault("sleep", clock.sleep)
    return run_validation_test(form, probe=probe, reserved_ip_ranges=RANGES, correlation_id="cid-1",
                               clock=lambda: NOW, timer=clock.timer, **kw)


# --- MFA off: modern sign-in + Graph roles -----------------------------------------------------

@pytest.mark.parametrize("templates,role", [
    ((GA,), "Global Administrator"), ((SPA,), "SharePoint Administrator"),
    ((SPA, GA, GLOBAL_READER), "Global Administrator")])
def test_modern_passes_with_the_strongest_role(templates, role):
    probe = FakeAccountProbe().answer("get_roles", ok("get_roles", role_template_ids=templates))
    outcome = run(modern(), probe)
    assert outcome.status == "passed" and outcome.message_id is None
    assert outcome.user_role == role and outcome.user_role_note is None
    assert probe.methods() == ["sign_in_modern", "get_roles"]
    assert outcome.evidence.upstream_requests == 2 and outcome.evidence.sign_in_path == "modern"
    assert [(c.name, c.status) for c in outcome.checks] == [
        ("signIn", "passed"), ("role", "passed"), ("adminCenter", "skipped")]


def test_modern_without_admin_role_is_insufficient():
    probe = FakeAccountProbe().answer("get_roles", ok("get_roles", role_template_ids=(GLOBAL_READER,),
                                                      role_names=("Global Reader",)))
    outcome = run(modern("reader@contoso.onmicrosoft.com"), probe)
    assert (outcome.status, outcome.message_id, outcome.user_role) == ("failed", "INSUFFICIENT_ROLE", "other")
    assert "Global Reader" in outcome.cause and "Global Administrator or SharePoint Administrator" in outcome.cause
    assert {c.name: c.status for c in outcome.checks} == {"signIn": "passed", "role": "failed",
                                                          "adminCenter": "skipped"}


def test_wrong_password_stops_after_the_token_request():
    probe = FakeAccountProbe().answer("sign_in_modern", failed("sign_in_modern", "AADSTS50126"))
    outcome = run(modern(password="wrong"), probe)
    assert (outcome.status, outcome.message_id) == ("failed", "CHECK_MFA_OR_APP_PASSWORD")
    assert probe.methods() == ["sign_in_modern"] and outcome.evidence.upstream_requests == 1
    assert outcome.evidence.aadsts_code == "AADSTS50126" and outcome.evidence.trace_id == "trace-1"
    assert outcome.user_role is None
    assert {c.name: c.status for c in outcome.checks}["signIn"] == "failed"


def test_app_password_with_mfa_off_is_named_as_the_cause():
    probe = FakeAccountProbe().answer("sign_in_modern", failed("sign_in_modern", "AADSTS50126"))
    outcome = run(modern(password="qwertyuiopasdfgh"), probe)
    assert outcome.message_id == "CHECK_MFA_OR_APP_PASSWORD"
    assert outcome.cause.startswith("The password has the shape of an app password (16 lowercase letters)")


@pytest.mark.parametrize("ca,variant_solution", [
    (False, "If this account has multi-factor authentication enabled on the multi-factor authentication interface"),
    (True, "If your Microsoft 365 tenant has enabled multi-factor authentication in Microsoft Entra conditional")])
def test_mfa_enabled_variant_follows_the_evidence(ca, variant_solution):
    probe = FakeAccountProbe().answer("sign_in_modern", failed("sign_in_modern", "AADSTS50076", ca_challenge=ca))
    outcome = run(modern("mfa@contoso.onmicrosoft.com"), probe)
    assert outcome.message_id == "MFA_ENABLED"
    assert outcome.solutions[0].startswith(variant_solution)
    if ca:
        assert any("203.0.113.0/28, 198.51.100.16/29" in s for s in outcome.solutions)


def test_access_policy_block_names_the_reserved_ranges():
    probe = FakeAccountProbe().answer("sign_in_modern", failed("sign_in_modern", "AADSTS53003"))
    outcome = run(modern("blocked@contoso.onmicrosoft.com"), probe)
    assert outcome.message_id == "ACCESS_POLICY_BLOCKED"
    assert "203.0.113.0/28, 198.51.100.16/29" in outcome.cause
    assert outcome.solutions_intro == "Choose one of the following methods based on your scenario."
    assert len(outcome.solutions) == 3


def test_unknown_code_is_a_generic_failure_not_a_crash():
    probe = FakeAccountProbe().answer("sign_in_modern", failed("sign_in_modern", "AADSTS123456"))
    outcome = run(modern(), probe)
    assert (outcome.status, outcome.message_id) == ("failed", "UNKNOWN_FAILURE")
    assert "AADSTS123456" in outcome.message and "AADSTS123456" in outcome.cause


def test_unreadable_answer_is_an_error_to_retry():
    probe = FakeAccountProbe().answer("sign_in_modern", failed("sign_in_modern", "PROBE_FAILURE", status=None))
    outcome = run(modern(), probe)
    assert (outcome.status, outcome.message_id) == ("error", "SERVICE_UNAVAILABLE")


# --- MFA on: legacy SharePoint sign-in ---------------------------------------------------------

def test_legacy_passes_with_blank_role_and_the_spec_note():
    probe = FakeAccountProbe()
    outcome = run(legacy(), probe)
    assert outcome.status == "passed"
    assert outcome.user_role is None and outcome.user_role_note == USER_ROLE_NOTE_MFA
    assert probe.methods() == ["sign_in_legacy", "check_admin_center"]
    assert probe.calls[0].args == ("mfa@contoso.onmicrosoft.com", ADMIN_URL, "cid-1")
    assert outcome.evidence.upstream_requests == 3 and outcome.evidence.sign_in_path == "legacy"
    assert {c.name: c.status for c in outcome.checks} == {"signIn": "passed", "role": "skipped",
                                                          "adminCenter": "passed"}


@pytest.mark.parametrize("url", [None, ""])
def test_mfa_without_custom_url_fails_before_any_request(url):
    probe = FakeAccountProbe()
    outcome = run(legacy(url=url), probe)
    assert (outcome.status, outcome.message_id) == ("failed", "ADMIN_CENTER_URL_REQUIRED")
    assert probe.calls == [] and outcome.evidence.upstream_requests == 0
    assert outcome.evidence.sign_in_path == "input"
    assert any("you must manually enter the SharePoint Online admin center URL" in s for s in outcome.solutions)


@pytest.mark.parametrize("form,field", [
    (ValidationForm(TENANT, "", Password("x")), "username"),
    (ValidationForm(TENANT, "admin@contoso.onmicrosoft.com", Password("")), "password"),
    (ValidationForm("not a tenant/../x", "admin@contoso.onmicrosoft.com", Password("x")), "tenantId"),
    (ValidationForm(TENANT, "mfa@contoso.onmicrosoft.com", Password("x"), True,
                    AdminCenter(AdminCenterMode.CUSTOM, "http://contoso-admin.sharepoint.com")), "adminCenter.url"),
])
def test_invalid_input_fails_before_any_request(form, field):
    probe = FakeAccountProbe()
    outcome = run(form, probe)
    assert (outcome.status, outcome.message_id) == ("failed", "INVALID_INPUT")
    assert field in outcome.cause and probe.calls == []


@pytest.mark.parametrize("result,message_id", [
    (failed("sign_in_legacy", "AADSTS50126", status=200, step="sts", requests=1), "INVALID_APP_PASSWORD"),
    (failed("sign_in_legacy", "IDCRL_RETIRED", status=200, step="sts", requests=1), "LEGACY_AUTH_RETIRED"),
    (failed("sign_in_legacy", "SP_NO_AUTH_COOKIE", status=200, step="wsignin", requests=2), "LEGACY_AUTH_BLOCKED"),
    (failed("sign_in_legacy", "AADSTS530035", status=200, step="sts", requests=1), "ACCESS_POLICY_BLOCKED"),
    (failed("sign_in_legacy", "SP_URL_NOT_SHAREPOINT", status=None, step="adminCenter", requests=0),
     "ADMIN_CENTER_UNREACHABLE"),
])
def test_legacy_sign_in_failures(result, message_id):
    probe = FakeAccountProbe().answer("sign_in_legacy", result)
    outcome = run(legacy(), probe)
    assert (outcome.status, outcome.message_id) == ("failed", message_id)
    assert probe.methods() == ["sign_in_legacy"] and outcome.user_role is None
    assert outcome.user_role_note == USER_ROLE_NOTE_MFA


def test_legacy_blocked_and_retired_carry_the_ghost_guest_limitation():
    for code in ("IDCRL_RETIRED", "SP_NO_AUTH_COOKIE"):
        probe = FakeAccountProbe().answer("sign_in_legacy", failed("sign_in_legacy", code, status=200))
        assert run(legacy(), probe).limitations == ("NO_GHOST_GUEST_USERS_RULE",)


def test_admin_center_refusing_the_account_is_a_role_problem():
    probe = FakeAccountProbe().answer("check_admin_center", failed("check_admin_center", "SP_FORBIDDEN", status=403))
    outcome = run(legacy(), probe)
    assert outcome.message_id == "INSUFFICIENT_ROLE" and ADMIN_URL in outcome.cause
    assert {c.name: c.status for c in outcome.checks} == {"signIn": "passed", "role": "skipped",
                                                          "adminCenter": "failed"}


def test_unreachable_admin_center_after_a_good_app_password():
    probe = FakeAccountProbe().answer("sign_in_legacy", failed("sign_in_legacy", "DNS_FAILURE", status=None,
                                                               step="wsignin", requests=2))
    outcome = run(legacy(url="https://wrong-admin.sharepoint.com"), probe)
    assert outcome.message_id == "ADMIN_CENTER_UNREACHABLE"
    assert "https://wrong-admin.sharepoint.com could not be reached" in outcome.cause
    assert {c.name: c.status for c in outcome.checks}["signIn"] == "passed"


# --- Retry-After ----------------------------------------------------------------------------

def test_short_retry_after_is_waited_for_once():
    clock = Clock()
    probe = FakeAccountProbe().answer("sign_in_modern", failed("sign_in_modern", None, status=429, retry_after=1.0))
    outcome = run(modern(), probe, clock=clock)
    assert outcome.status == "passed" and clock.slept == [1.0]
    assert probe.methods() == ["sign_in_modern", "sign_in_modern", "get_roles"]
    assert outcome.evidence.upstream_requests == 3
    assert outcome.duration_ms == 1000


def test_only_the_throttled_step_is_repeated():
    probe = FakeAccountProbe().answer("get_roles", failed("get_roles", None, status=503, retry_after=2))
    outcome = run(modern(), probe)
    assert outcome.status == "passed"
    assert probe.methods() == ["sign_in_modern", "get_roles", "get_roles"]


def test_long_retry_after_is_handed_to_the_caller():
    clock = Clock()
    probe = FakeAccountProbe().answer("sign_in_modern", failed("sign_in_modern", None, status=429, retry_after=30))
    outcome = run(modern(), probe, clock=clock)
    assert (outcome.status, outcome.message_id) == ("error", "THROTTLED")
    assert outcome.evidence.retry_after_seconds == 30 and outcome.retry_after_seconds == 30
    assert clock.slept == [] and probe.methods() == ["sign_in_modern"]
    assert "30 seconds" in outcome.solutions[0]


def test_retry_happens_once_only():
    clock = Clock()
    busy = failed("check_admin_center", None, status=503, retry_after=1.5)
    probe = FakeAccountProbe().answer("check_admin_center", busy, busy)
    outcome = run(legacy(), probe, clock=clock)
    assert (outcome.status, outcome.message_id) == ("error", "SERVICE_UNAVAILABLE")
    assert clock.slept == [1.5] and outcome.evidence.retry_after_seconds == 2
    assert probe.methods() == ["sign_in_legacy", "check_admin_center", "check_admin_center"]


def test_unavailable_without_retry_after_is_not_retried():
    probe = FakeAccountProbe().answer("sign_in_modern", failed("sign_in_modern", None, status=503))
    outcome = run(modern(), probe)
    assert (outcome.status, outcome.message_id) == ("error", "SERVICE_UNAVAILABLE")
    assert probe.methods() == ["sign_in_modern"] and outcome.evidence.retry_after_seconds is None


def test_a_queue_worker_can_refuse_to_wait():
    clock = Clock()
    probe = FakeAccountProbe().answer("sign_in_modern", failed("sign_in_modern", None, status=429, retry_after=1))
    outcome = run(modern(), probe, clock=clock, max_inline_wait=0)
    assert outcome.message_id == "THROTTLED" and outcome.retry_after_seconds == 1 and clock.slept == []


# --- shape and secrets ----------------------------------------------------------------------

def test_outcome_serialises_in_camel_case():
    data = outcome_json(run(modern(), FakeAccountProbe()))
    assert set(data) == {"status", "messageId", "message", "solutionsIntro", "solutions", "cause", "userRole",
                         "userRoleNote", "checks", "evidence", "limitations", "testedAt", "durationMs"}
    assert set(data["evidence"]) >= {"aadstsCode", "httpStatus", "correlationId", "traceId",
                                     "retryAfterSeconds", "signInPath"}
    assert data["testedAt"] == "2026-06-01T12:00:00.000Z"
    assert data["evidence"]["correlationId"] == "cid-from-upstream"
    json.dumps(data)


CANARY = "Canary-Pa55word-7f3a9c"


@pytest.mark.parametrize("mfa,script", [
    (False, None),
    (False, ("sign_in_modern", failed("sign_in_modern", "AADSTS50126", error_description=f"AADSTS50126: {CANARY}"))),
    (False, ("sign_in_modern", failed("sign_in_modern", "AADSTS99999", error_description=f"odd {CANARY}"))),
    (False, ("get_roles", failed("get_roles", None, status=429, retry_after=60))),
    (True, None),
    (True, ("sign_in_legacy", failed("sign_in_legacy", "STS_FAULT", status=200, error_description=CANARY))),
    (True, ("check_admin_center", failed("check_admin_center", "SP_FORBIDDEN", status=403))),
])
def test_the_password_never_leaves_the_sign_in(mfa, script, caplog):
    caplog.set_level(logging.DEBUG)
    probe = FakeAccountProbe()
    if script:
        probe.answer(*script)
    form = (ValidationForm(TENANT, "mfa@contoso.onmicrosoft.com", Password(CANARY), True,
                           AdminCenter(AdminCenterMode.CUSTOM, ADMIN_URL)) if mfa else modern(password=CANARY))
    outcome = run(form, probe)
    for text in (str(outcome), repr(outcome), json.dumps(outcome_json(outcome)), caplog.text, repr(form), str(form)):
        assert CANARY not in text
    # Only the sign-in step received the password.
    assert [c.method for c in probe.calls if c.password_seen] == [probe.calls[0].method]
    assert probe.calls[0].method in ("sign_in_modern", "sign_in_legacy")


def test_form_from_a_request_body_through_the_contract():
    import json

    from shared.contract.base import parse_body
    from shared.contract.profiles import ValidationTestRequest

    body = {"mfaEnabled": True, "username": "mfa@contoso.onmicrosoft.com", "password": "qwertyuiopasdfgh",
            "adminCenter": {"mode": "custom", "url": ADMIN_URL + "/"}}
    form = parse_body(ValidationTestRequest, json.dumps(body)).to_form(TENANT)
    assert form.sign_in_path == "legacy" and form.admin_center_url == ADMIN_URL
    assert form.username == "mfa@contoso.onmicrosoft.com"
    junk = ValidationForm(TENANT, "", Password(""), mfa_enabled=False)
    assert run(junk, FakeAccountProbe()).message_id == "INVALID_INPUT"


def test_the_key_vault_read_of_a_saved_profile_counts_against_the_deadline():
    """The secret read and the sign-in share one deadline: a slow Key Vault leaves the sign-in
    only what is left of it."""
    from shared.domain.profile import ServiceAccountProfile, SecretRef
    from shared.domain.validation_test import time_left
    from shared.services.validation import ValidationService
    from tests.fakes import FakeHistory, FakeProfileRepository, FakePublisher, FakeSecretStore

    seen = {}

    class SlowVault(FakeSecretStore):
        def get_secret(self, ref):
            seen["at read"] = time_left()
            return Password("Demo-Passw0rd!")

    class Probe(FakeAccountProbe):
        def sign_in_modern(self, *args, **kwargs):
            seen["at sign-in"] = time_left()
            return super().sign_in_modern(*args, **kwargs)

    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    profile = ServiceAccountProfile(id="p", tenant_id=TENANT, name="n", description="", mfa_enabled=False,
                                    username="admin@contoso.onmicrosoft.com", admin_center=AdminCenter(),
                                    secret=SecretRef("s", "v1"), password_updated_at=now, created_at=now,
                                    updated_at=now)
    service = ValidationService(FakeProfileRepository(), SlowVault(), FakeHistory(), FakePublisher(), Probe(),
                                ("203.0.113.0/28",), deadline_seconds=7)
    service.run(profile, correlation_id="c")
    assert 0 < seen["at sign-in"] <= seen["at read"] <= 7
