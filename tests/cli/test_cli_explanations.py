"""Name the policy from the operator CLI, in a subprocess against the local stack: ``profiles validate``
prints the outcome's explanation next to the message (pending at first; with ``--wait-explanation``
the policy named from the tenant's sign-in log and the suggested change as the first step, bounded by
``--timeout``), ``profiles history`` shows it, ``--json`` carries the API's explanation unchanged, and a
tenant without a diagnosis app profile is told which permissions are missing.

The diagnosis app profile is created through the API in the test's own tenant alias (the follow-up
signs in as it for Graph)."""
from __future__ import annotations

import json
import time
import uuid

from tests.apps import DIAGNOSIS_APP, add_app_profile
from tests.demo import PASSWORD

BLOCKED = "blocked@contoso.onmicrosoft.com"
CAMFA = "camfa@contoso.onmicrosoft.com"
LOCATION_POLICY = "Block sign-in outside trusted locations"
RESERVED = "203.0.113.0/28"


def add_diagnosis_app(api, sim, tenant):
    add_app_profile(api, sim, tenant, DIAGNOSIS_APP, name="diagnosis")


def user_profile(api, tenant, upn):
    r = api.post(f"/api/tenants/{tenant}/profiles", json={"name": "cli " + uuid.uuid4().hex[:6], "username": upn,
                                                         "password": PASSWORD})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def record(api, tenant, profile_id, record_id):
    items = api.get(f"/api/tenants/{tenant}/profiles/{profile_id}/validations").json()["items"]
    (found,) = [i for i in items if i["recordId"] == record_id]
    return found


def test_validate_prints_pending_then_waits_for_the_named_policy_and_its_change(cli, api, sim, tenant):
    add_diagnosis_app(api, sim, tenant)
    profile_id = user_profile(api, tenant, BLOCKED)

    first = cli("profiles", "validate", profile_id)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "ACCESS_POLICY_BLOCKED" in first.stdout
    assert "Explanation: pending - The tenant's sign-in log records sign-ins minutes late" in first.stdout
    assert "--wait-explanation" in first.stderr
    assert "Suggested change" not in first.stdout

    waited = cli("profiles", "validate", profile_id, "--wait-explanation", "--timeout", "60", "--interval", "0.5")
    assert waited.returncode == 1, waited.stdout + waited.stderr
    lines = waited.stdout.splitlines()
    assert "Explanation (from the tenant's sign-in log):" in lines
    assert f"  Policy: {LOCATION_POLICY}" in lines
    (facts,) = [line for line in lines if line.startswith("    id ")]
    assert "state enabled, failed controls: block" in facts
    # the suggested change is the first step, the spec's solutions follow
    steps = [line for line in lines if line.startswith("  1. ") or line.startswith("  2. ")]
    assert steps[0].startswith("  1. Suggested change for this account: Add the reserved IP addresses (") and RESERVED in steps[0]
    assert "Delete or disable the access policies." in steps[1]
    assert lines.index("Explanation (from the tenant's sign-in log):") < lines.index(steps[0])
    assert "Still pending" not in waited.stderr

    history = cli("profiles", "history", profile_id)
    assert history.returncode == 0, history.stderr
    assert LOCATION_POLICY in history.stdout and "Suggested change (trustedLocation)" in history.stdout
    assert history.stdout.count(LOCATION_POLICY) >= 2  # both records are explained by now

    as_json = cli("profiles", "history", profile_id, "--json")
    items = json.loads(as_json.stdout)["items"]
    newest = items[0]
    assert newest["explanation"] == record(api, tenant, profile_id, newest["recordId"])["explanation"]


def test_validate_json_with_wait_carries_the_apis_explanation_unchanged(cli, api, sim, tenant):
    add_diagnosis_app(api, sim, tenant)
    profile_id = user_profile(api, tenant, CAMFA)
    done = cli("profiles", "validate", profile_id, "--wait-explanation", "--timeout", "60", "--interval", "0.5", "--json")
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["messageId"] == "MFA_ENABLED" and result["explanation"]["state"] == "explained"
    assert result["explanation"] == record(api, tenant, profile_id, result["recordId"])["explanation"]
    assert result["explanation"]["suggestedChange"]["kind"] == "excludeUser"
    assert done.stderr == ""  # --json: nothing but the JSON


def test_without_a_diagnosis_app_profile_the_missing_permissions_are_printed(cli, api, tenant):
    profile_id = user_profile(api, tenant, BLOCKED)
    result = cli("profiles", "validate", profile_id, "--wait-explanation")
    assert result.returncode == 1, result.stderr
    assert "Explanation: unavailable - To name the policy, add an app profile" in result.stdout
    assert "  Missing: AuditLog.Read.All, Policy.Read.All" in result.stdout.splitlines()
    assert "Suggested change" not in result.stdout
    assert "Looking in" not in result.stderr  # nothing to wait for

    raw = json.loads(cli("profiles", "validate", profile_id, "--json").stdout)
    assert raw["explanation"]["state"] == "unavailable"
    assert raw["explanation"]["missing"] == ["AuditLog.Read.All", "Policy.Read.All"]


def test_wait_explanation_is_bounded_by_timeout(cli, api, sim, tenant):
    sim.control.patch_scenario({"settings": {"signInLogDelaySeconds": 600}})  # the entry does not come in time
    add_diagnosis_app(api, sim, tenant)
    profile_id = user_profile(api, tenant, BLOCKED)
    started = time.monotonic()
    result = cli("profiles", "validate", profile_id, "--wait-explanation", "--timeout", "3", "--interval", "0.5", timeout=30)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 30
    assert "Explanation: pending" in result.stdout
    assert "Still pending after 3s" in result.stderr


def test_wait_explanation_belongs_to_one_profile(cli):
    result = cli("profiles", "validate", "--all", "--wait-explanation")
    assert result.returncode == 2
    assert "--wait-explanation belongs to the test of one profile id." in result.stderr
