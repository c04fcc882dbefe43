"""Name the policy, end to end: the tenant's diagnosis app profile reads the simulator's sign-in log
and Conditional Access policies through Graph; blocked@ (a location policy), camfa@ (an MFA policy)
and mmpolicy@ (a Microsoft-managed MFA policy) each get their policy named with the change that lets
them through; applying it in the simulator and testing again passes. Without P1 or the permissions,
the outcome says what is missing."""
from __future__ import annotations

import base64
import json

import pytest
from azure.storage.queue import QueueClient
from cloudevents.core.bindings.http import HTTPMessage, from_structured_event

from tests.apps import DIAGNOSIS_APP, add_app_profile
from tests.demo import LITWARE, PASSWORD
from tests.fixtures.app import unique
from tests.waiting import wait_until

CONTOSO_DOMAIN = "contoso.onmicrosoft.com"
NO_P1_APP = "c0ffee00-0000-4000-8000-000000000004"      # the same in litware, which has no Entra ID P1
BACKUP_APP = "c0ffee00-0000-4000-8000-000000000001"     # no diagnosis permissions
RESERVED = "203.0.113.0/28"





def user_profile(api, tenant, upn):
    r = api.post(f"/api/tenants/{tenant}/profiles", json={"name": unique(upn), "username": upn, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return r.json()


def validate(api, tenant, profile):
    r = api.post(f"/api/tenants/{tenant}/profiles/{profile['id']}/validate")
    assert r.status_code == 200, r.text
    return r.json()


def settled(api, tenant, profile, record_id):
    def look():
        items = api.get(f"/api/tenants/{tenant}/profiles/{profile['id']}/validations").json()["items"]
        (record,) = [i for i in items if i["recordId"] == record_id]
        assert record["explanation"]["state"] != "pending", record["explanation"]
        return record["explanation"]

    return wait_until(look, timeout=60, interval=0.5, what="the explanation of the outcome")


def explained_events(azurite, record_id):
    queue = QueueClient.from_connection_string(azurite.connection_string, "troubleshooting-outcomes")
    out = []
    for message in queue.peek_messages(max_messages=32):
        event = from_structured_event(HTTPMessage(headers={}, body=base64.b64decode(message.content)))
        if event.get_type().endswith(".explained") and event.get_data()["recordId"] == record_id:
            out.append(event)
    return out


@pytest.fixture
def diagnosed(api, sim, tenant):
    add_app_profile(api, sim, tenant, DIAGNOSIS_APP)
    return tenant


@pytest.mark.parametrize("upn,policy,change_kind,microsoft_managed", [
    ("blocked@contoso.onmicrosoft.com", "Block sign-in outside trusted locations", "trustedLocation", False),
    ("camfa@contoso.onmicrosoft.com", "Require MFA for camfa", "excludeUser", False),
    ("mmpolicy@contoso.onmicrosoft.com", "Multifactor authentication for per-user multifactor authentication users",
     "excludeUser", True),
])
def test_the_blocking_policy_is_named_and_its_change_lets_the_account_through(api, sim, azurite, diagnosed, upn,
                                                                             policy, change_kind, microsoft_managed):
    from tests.e2e.test_outcomes_and_secrets import drain

    drain(azurite)
    profile = user_profile(api, diagnosed, upn)
    first = validate(api, diagnosed, profile)
    assert first["messageId"] in ("ACCESS_POLICY_BLOCKED", "MFA_ENABLED"), first
    assert first["explanation"]["state"] == "pending"
    explanation = settled(api, diagnosed, profile, first["recordId"])
    assert explanation["state"] == "explained", explanation
    (named,) = explanation["policies"]
    assert named["displayName"].endswith(policy) and named["microsoftManaged"] is microsoft_managed
    assert named["state"] == "enabled" and named["failedControls"]
    change = explanation["suggestedChange"]
    assert change["kind"] == change_kind and change["policyId"] == named["id"]
    if change_kind == "trustedLocation":
        assert RESERVED in change["text"]
    else:
        assert upn in change["text"]
    # the spec's words stay the message
    assert first["message"] in ("Your organization has set access policies that block the validation.",
                                "This account has multi-factor authentication enabled.")
    (event,) = explained_events(azurite, first["recordId"])
    assert event.get_data()["explanation"]["policies"][0]["id"] == named["id"]
    # apply the suggested change in the simulator, test again
    if change_kind == "trustedLocation":
        sim.control.patch_policy(CONTOSO_DOMAIN, policy, {"locations": {"trustedRanges": ["192.0.2.0/24", RESERVED]}})
    else:
        sim.control.patch_policy(CONTOSO_DOMAIN, policy, {"users": {"include": [upn], "exclude": [upn]}})
    again = validate(api, diagnosed, profile)
    assert again["status"] == "passed", again
    assert "explanation" not in again


def test_without_a_diagnosis_permission_the_outcome_names_it(api, sim, tenant):
    add_app_profile(api, sim, tenant, BACKUP_APP)  # no AuditLog.Read.All / Policy.Read.All
    profile = user_profile(api, tenant, "blocked@contoso.onmicrosoft.com")
    first = validate(api, tenant, profile)
    explanation = settled(api, tenant, profile, first["recordId"])
    assert explanation["state"] == "unavailable"
    assert set(explanation["missing"]) == {"AuditLog.Read.All", "Policy.Read.All"}


def test_a_tenant_without_p1_is_told_which_licence_would_name_the_policy(api, sim, tenant_alias):
    tenant = tenant_alias(LITWARE)
    add_app_profile(api, sim, tenant, NO_P1_APP)
    profile = user_profile(api, tenant, "mfa@litware.onmicrosoft.com")  # per-user MFA: 50076
    first = validate(api, tenant, profile)
    assert first["messageId"] == "MFA_ENABLED", first
    explanation = settled(api, tenant, profile, first["recordId"])
    assert explanation["state"] == "unavailable" and explanation["missing"] == ["Microsoft Entra ID P1"]
    assert "licence" in explanation["reason"]


def test_a_late_log_entry_is_waited_for(api, sim, diagnosed):
    sim.control.patch_scenario({"settings": {"signInLogDelaySeconds": 6}})
    profile = user_profile(api, diagnosed, "blocked@contoso.onmicrosoft.com")
    first = validate(api, diagnosed, profile)
    explanation = settled(api, diagnosed, profile, first["recordId"])
    assert explanation["state"] == "explained", json.dumps(explanation)
