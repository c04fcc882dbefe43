"""Naming the blocking policy: the pure rules (which policy, which control, which one change) and the
follow-up over fakes (pending at once, explained when the entry arrives, published once, bounded
wait, missing permission or licence said)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shared.domain.diagnosis import (EXCLUDE_APP, EXCLUDE_USER, SECURITY_DEFAULTS, TRUSTED_LOCATION, AppliedPolicy,
                                     ExplainMessage, PolicyFacts, SignInEntry, explain, needs_explanation, next_look)
from tests.fakes_validation import failed
from tests.inprocess import InProcessApp

T = "11111111-1111-4111-8111-111111111111"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
RANGES = ("203.0.113.0/28",)
USER = "blocked@contoso.onmicrosoft.com"
LOCATION = PolicyFacts("p-loc", "Block outside the office", "enabled", built_in_controls=("block",),
                       includes_locations=True, excludes_locations=True)
MFA_MANAGED = PolicyFacts("p-mm", "Multifactor authentication for admins accessing Microsoft Admin Portals",
                          "enabled", microsoft_managed=True, built_in_controls=("mfa",))


def entry(*policies, correlation_id="cid-1", user=USER, code=53003, created=NOW):
    return SignInEntry(id="signin-1", created=created, correlation_id=correlation_id, user_principal_name=user,
                       app_id="app", ip_address="203.0.113.5", error_code=code, conditional_access_status="failure",
                       policies=tuple(policies))


def test_only_conditional_access_mfa_and_security_defaults_codes_are_explained():
    assert all(needs_explanation(c) for c in ("AADSTS53003", "AADSTS50076", "AADSTS530035", "AADSTS50158"))
    assert not any(needs_explanation(c) for c in ("AADSTS50126", "AADSTS700016", None))


def test_a_location_block_suggests_the_reserved_ranges_as_a_trusted_location():
    e = entry(AppliedPolicy("p-loc", "Block outside the office", "failure", ("block",)),
              AppliedPolicy("p-other", "Other", "success", ("mfa",)))
    out = explain(e, {"p-loc": LOCATION}, security_defaults=None, account=USER, app_profile=False,
                  reserved_ip_ranges=RANGES, at=NOW)
    assert out.state == "explained" and [p.display_name for p in out.policies] == ["Block outside the office"]
    assert out.policies[0].failed_controls == ("block",) and not out.policies[0].microsoft_managed
    assert out.suggested_change.kind == TRUSTED_LOCATION and "203.0.113.0/28" in out.suggested_change.text
    assert out.suggested_change.policy_id == "p-loc"


def test_a_microsoft_managed_mfa_policy_is_named_and_the_user_excluded():
    e = entry(AppliedPolicy("p-mm", "", "failure", ("mfa",)), code=50076)
    out = explain(e, {"p-mm": MFA_MANAGED}, security_defaults=False, account=USER, app_profile=False,
                  reserved_ip_ranges=RANGES, at=NOW)
    assert out.policies[0].microsoft_managed and out.policies[0].display_name == MFA_MANAGED.display_name
    assert out.suggested_change.kind == EXCLUDE_USER and USER in out.suggested_change.text
    assert "Microsoft-managed" in out.suggested_change.text and "app profile" in out.suggested_change.text


def test_a_policy_gone_from_graph_is_still_named_from_the_log():
    e = entry(AppliedPolicy("p-gone", "Deleted policy", "failure", ("block",)))
    out = explain(e, {}, security_defaults=None, account=USER, app_profile=False, reserved_ip_ranges=RANGES, at=NOW)
    assert out.policies[0].display_name == "Deleted policy" and out.suggested_change.kind == EXCLUDE_USER


def test_a_workload_identity_policy_suggests_excluding_the_app():
    e = entry(AppliedPolicy("p-wl", "Block the backup app", "failure", ("block",)), user=None)
    facts = PolicyFacts("p-wl", "Block the backup app", "enabled", built_in_controls=("block",),
                        workload_identities=True)
    out = explain(e, {"p-wl": facts}, security_defaults=None, account="c0ffee00", app_profile=True,
                  reserved_ip_ranges=RANGES, at=NOW)
    assert out.suggested_change.kind == EXCLUDE_APP and "c0ffee00" in out.suggested_change.text


def test_security_defaults_and_nothing_at_all():
    out = explain(entry(code=50076), {}, security_defaults=True, account=USER, app_profile=False,
                  reserved_ip_ranges=RANGES, at=NOW)
    assert out.state == "explained" and out.security_defaults and out.suggested_change.kind == SECURITY_DEFAULTS
    none = explain(entry(code=50076), {}, security_defaults=False, account=USER, app_profile=False,
                   reserved_ip_ranges=RANGES, at=NOW)
    assert none.state == "unavailable" and "per-user" in none.reason


def test_looks_back_off_and_the_message_round_trips():
    assert [next_look(a, first_seconds=60, cap_seconds=300) for a in range(5)] == [60, 120, 240, 300, 300]
    msg = ExplainMessage(T, "p", "r", "cid", NOW, attempt=2)
    assert ExplainMessage.from_json(msg.to_json()) == msg
    for bad in ('{"v": 2}', "[]", '{"v": 1, "tenantId": "t"}', '{"v":1,"tenantId":"t","profileId":"p","recordId":"r",'
                                                               '"testedAt":"2026-12-01T12:00:00"}'):
        with pytest.raises((ValueError, KeyError, TypeError)):
            ExplainMessage.from_json(bad)


# --- the follow-up over fakes ------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now


@pytest.fixture
def app():
    return InProcessApp()


def blocked_profile(app, username=USER):
    r = app.call("createProfile", body={"name": "Blocked", "username": username, "password": "Canary-Pw-1!"},
                 tenantId=T)
    assert r.status == 201
    return r.json()


def add_diagnosis_app(app):
    r = app.call("createProfile", body={"kind": "app", "name": "Diagnostics", "clientId": T,
                                        "certificate": {"generate": True}}, tenantId=T)
    assert r.status == 201


def validate_blocked(app, profile):
    app.probe.answer("sign_in_modern", failed("sign_in_modern", "AADSTS53003", correlation_id="cid-blocked"))
    r = app.call("validateProfile", tenantId=T, profileId=profile["id"])
    assert r.status == 200 and r.json()["messageId"] == "ACCESS_POLICY_BLOCKED"
    return r.json()


def test_without_an_app_profile_the_outcome_says_what_would_name_the_policy(app):
    out = validate_blocked(app, blocked_profile(app))
    assert out["explanation"]["state"] == "unavailable"
    assert out["explanation"]["missing"] == ["AuditLog.Read.All", "Policy.Read.All"]
    assert app.explanation_queue.sent == []


def test_a_wrong_password_has_no_explanation(app):
    profile = blocked_profile(app)
    app.probe.answer("sign_in_modern", failed("sign_in_modern", "AADSTS50126"))
    out = app.call("validateProfile", tenantId=T, profileId=profile["id"]).json()
    assert "explanation" not in out and app.explanation_queue.sent == []


def test_pending_at_once_then_explained_when_the_entry_arrives_and_published_once(app):
    add_diagnosis_app(app)
    profile = blocked_profile(app)
    out = validate_blocked(app, profile)
    assert out["explanation"]["state"] == "pending"
    (msg, delay), = app.explanation_queue.sent
    assert delay == app.services.explanations.first_look_seconds and msg.record_id == out["recordId"]
    service = app.services.explanations
    # the log has no entry yet: the look comes back later, doubling
    assert service.process(msg.to_json()).value == "waiting"
    (again, delay2) = app.explanation_queue.sent[-1]
    assert again.attempt == 1 and delay2 == 2 * delay
    app.diagnostics.late.append(entry(AppliedPolicy("p-loc", "Block outside the office", "failure", ("block",)),
                                      correlation_id="cid-blocked"))
    app.diagnostics.policy_facts["p-loc"] = LOCATION
    assert service.process(again.to_json()).value == "waiting"
    app.diagnostics.arrive()
    assert service.process(again.to_json()).value == "explained"
    history = app.call("listValidations", tenantId=T, profileId=profile["id"]).json()["items"]
    explanation = history[0]["explanation"]
    assert explanation["state"] == "explained" and explanation["policies"][0]["displayName"] == LOCATION.display_name
    assert explanation["suggestedChange"]["kind"] == TRUSTED_LOCATION
    assert [r.record_id for r in app.publisher.explained] == [out["recordId"]]
    # a redelivery finds it settled: no second event
    assert service.process(again.to_json()).value == "alreadySettled" and len(app.publisher.explained) == 1
    assert ("find_sign_in", "cid-blocked", USER, None) in app.diagnostics.calls


def test_the_wait_is_bounded(app):
    add_diagnosis_app(app)
    out = validate_blocked(app, blocked_profile(app))
    service = app.services.explanations
    (msg, _), = app.explanation_queue.sent
    clock = Clock()
    clock.now = datetime.fromisoformat(out["testedAt"].replace("Z", "+00:00")) + timedelta(
        seconds=service.max_wait_seconds + 1)
    service.clock = clock
    assert service.process(msg.to_json()).value == "unavailable"
    assert len(app.explanation_queue.sent) == 1  # no further look
    (published,) = app.publisher.explained
    assert published.outcome["explanation"]["state"] == "unavailable"
    assert "had no entry" in published.outcome["explanation"]["reason"]


@pytest.mark.parametrize("refusal,missing", [
    (("The tenant's sign-in log needs a Microsoft Entra ID P1 licence.", ("Microsoft Entra ID P1",)),
     ["Microsoft Entra ID P1"]),
    (("Graph refused", ("AuditLog.Read.All", "Policy.Read.All")), ["AuditLog.Read.All", "Policy.Read.All"]),
])
def test_a_missing_licence_or_permission_is_said_not_an_error(app, refusal, missing):
    add_diagnosis_app(app)
    validate_blocked(app, blocked_profile(app))
    app.diagnostics.refuse = refusal
    (msg, _), = app.explanation_queue.sent
    assert app.services.explanations.process(msg.to_json()).value == "unavailable"
    assert app.publisher.explained[0].outcome["explanation"]["missing"] == missing


def test_an_app_whose_token_lacks_the_roles_is_named(app):
    add_diagnosis_app(app)
    validate_blocked(app, blocked_profile(app))
    from tests.fakes_validation import ok

    app.probe.answer("diagnosis", ok("diagnosis", role_names=("Sites.FullControl.All", "AuditLog.Read.All")))
    (msg, _), = app.explanation_queue.sent
    assert app.services.explanations.process(msg.to_json()).value == "unavailable"
    assert app.publisher.explained[0].outcome["explanation"]["missing"] == ["Policy.Read.All"]


def test_the_poison_handler_settles_a_pending_explanation(app):
    add_diagnosis_app(app)
    validate_blocked(app, blocked_profile(app))
    (msg, _), = app.explanation_queue.sent
    service = app.services.explanations
    assert service.process_poison(msg.to_json()).value == "unavailable"
    assert service.process_poison(msg.to_json()).value == "alreadySettled"
    assert service.process("not json").value == "poisoned"


def test_the_logs_control_names_are_the_policys():
    e = entry(AppliedPolicy("p-mm", "Microsoft-managed: x", "failure", ("Mfa",)), code=50076)
    out = explain(e, {}, security_defaults=None, account=USER, app_profile=False, reserved_ip_ranges=RANGES, at=NOW)
    assert out.policies[0].failed_controls == ("mfa",)
    assert explain(entry(AppliedPolicy("b", "B", "failure", ("Block",))), {"b": LOCATION}, security_defaults=None,
                   account=USER, app_profile=False, reserved_ip_ranges=RANGES,
                   at=NOW).suggested_change.kind == TRUSTED_LOCATION
