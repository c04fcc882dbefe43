"""Graph's sign-in log, Conditional Access policies, named locations and security defaults (issue 15
point 4), read by the diagnosis app registration the way the product's app profile reads them. The
field sets are those of the Graph reference pages and captured responses cited in the simulator
README ("Sign-in log, Conditional Access and security defaults through Graph")."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from devtools.m365sim.scenario import stable_id
from tests.waiting import wait_until

from .helpers import (ADATUM, APP_BACKUP, APP_DIAGNOSTICS, APP_DIAGNOSTICS_NO_P1, APP_NO_CONSENT, CONTOSO, LITWARE,
                      PASSWORD, PUBLIC_CLIENT, app_token, ropc, ropc_raw, rst_envelope)

GRAPH = "https://graph.microsoft.com"
C = "contoso.onmicrosoft.com"
MM_POLICY = "Multifactor authentication for per-user multifactor authentication users"
MM_DISPLAY = "Microsoft-managed: " + MM_POLICY

# signIn (v1.0 resource page and its List example): the fields the simulator fills, with their JSON types
SIGN_IN_FIELDS = {
    "id": str, "createdDateTime": str, "userDisplayName": (str, type(None)), "userPrincipalName": (str, type(None)),
    "userId": str, "appId": (str, type(None)), "appDisplayName": (str, type(None)), "ipAddress": str,
    "clientAppUsed": (str, type(None)), "correlationId": str, "conditionalAccessStatus": str, "isInteractive": bool,
    "riskDetail": str, "riskLevelAggregated": str, "riskLevelDuringSignIn": str, "riskState": str,
    "riskEventTypes": list, "riskEventTypes_v2": list, "resourceDisplayName": (str, type(None)),
    "resourceId": (str, type(None)), "status": dict, "deviceDetail": dict, "location": dict,
    "appliedConditionalAccessPolicies": list,
}
BETA_FIELDS = {"signInEventTypes": list, "authenticationProtocol": str, "clientCredentialType": str,
               "servicePrincipalId": str, "servicePrincipalName": (str, type(None)), "resourceTenantId": str,
               "homeTenantId": str, "userType": (str, type(None))}
APPLIED_FIELDS = {"id", "displayName", "enforcedGrantControls", "enforcedSessionControls", "result"}
POLICY_FIELDS = {"id", "templateId", "displayName", "createdDateTime", "modifiedDateTime", "state", "conditions",
                 "grantControls", "sessionControls"}
CONDITION_FIELDS = {"userRiskLevels", "signInRiskLevels", "servicePrincipalRiskLevels", "clientAppTypes", "platforms",
                    "devices", "authenticationFlows", "insiderRiskLevels", "locations", "clientApplications",
                    "applications", "users"}
USER_CONDITION_FIELDS = {"includeUsers", "excludeUsers", "includeGroups", "excludeGroups", "includeRoles",
                         "excludeRoles", "includeGuestsOrExternalUsers", "excludeGuestsOrExternalUsers"}


@pytest.fixture
def diag(sim, sim_session):
    """``diag(path, app=APP_DIAGNOSTICS, tenant=CONTOSO, version='v1.0', **params) -> Response``."""
    tokens = {}

    def call(path, *, app=APP_DIAGNOSTICS, tenant=CONTOSO, version="v1.0", url=None, **params):
        if (app, tenant) not in tokens:
            result = app_token(sim, sim_session, app, tenant)
            assert "access_token" in result, result
            tokens[(app, tenant)] = result["access_token"]
        return sim_session.get(url or f"{GRAPH}/{version}{path}", params=params or None, timeout=10,
                               headers={"Authorization": f"Bearer {tokens[(app, tenant)]}"})
    return call


def by_correlation(diag, cid, version="v1.0", **params):
    resp = diag("/auditLogs/signIns", version=version, **{"$filter": f"correlationId eq '{cid}'"}, **params)
    assert resp.status_code == 200, resp.text
    return resp.json()["value"]


def assert_types(record, fields):
    for name, kind in fields.items():
        assert name in record, name
        assert isinstance(record[name], kind), (name, record[name])


# ---------------------------------------------------------------------------------------------- sign-in log

def test_a_sign_in_is_listed_in_graphs_shape_with_the_clients_correlation_id(sim, sim_session, diag):
    cid = str(uuid.uuid4())
    assert ropc_raw(sim_session, CONTOSO, f"admin@{C}", PASSWORD, correlation_id=cid).status_code == 200
    resp = diag("/auditLogs/signIns", **{"$filter": f"correlationId eq '{cid}'"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["@odata.context"] == f"{GRAPH}/v1.0/$metadata#auditLogs/signIns"
    [entry] = body["value"]
    assert_types(entry, SIGN_IN_FIELDS)
    assert "signInEventTypes" not in entry  # a beta property
    datetime.strptime(entry["createdDateTime"], "%Y-%m-%dT%H:%M:%S.%f0Z")
    user = sim.control.scenario()["tenants"][1]["users"][0]
    assert (entry["userPrincipalName"], entry["userId"], entry["userDisplayName"]) == (
        f"admin@{C}", user["id"], "Contoso Admin")
    assert (entry["appId"], entry["appDisplayName"]) == (PUBLIC_CLIENT, "Microsoft Azure PowerShell")
    assert (entry["ipAddress"], entry["clientAppUsed"], entry["isInteractive"]) == (
        "203.0.113.5", "Mobile Apps and Desktop clients", True)
    assert (entry["resourceId"], entry["resourceDisplayName"]) == (
        "00000003-0000-0000-c000-000000000000", "Microsoft Graph")
    assert entry["status"] == {"errorCode": 0, "failureReason": None, "additionalDetails": None}
    assert entry["conditionalAccessStatus"] == "notApplied"
    assert entry["riskLevelAggregated"] == "hidden"  # P1 only: risk details need P2
    assert all(set(p) == APPLIED_FIELDS for p in entry["appliedConditionalAccessPolicies"])
    legacy = next(p for p in entry["appliedConditionalAccessPolicies"]
                  if p["displayName"] == "Block legacy authentication (report-only)")
    assert (legacy["result"], legacy["enforcedGrantControls"]) == ("reportOnlyNotApplied", ["Block"])
    # the single item is there too
    one = diag(f"/auditLogs/signIns/{entry['id']}").json()
    assert one["@odata.context"].endswith("#auditLogs/signIns/$entity") and one["correlationId"] == cid


@pytest.mark.parametrize("upn, code, display_name, grant, ip", [
    (f"blocked@{C}", 53003, "Block sign-in outside trusted locations", "Block", "198.51.100.9"),
    (f"camfa@{C}", 50076, "Require MFA for camfa", "Mfa", None),
    (f"mmpolicy@{C}", 50076, MM_DISPLAY, "Mfa", None),
])
def test_a_blocked_sign_in_names_its_failing_policy(sim, sim_session, diag, upn, code, display_name, grant, ip):
    if ip:
        sim_session.headers["x-sim-client-ip"] = ip
    result = ropc(sim_session, CONTOSO, upn, PASSWORD)
    sim_session.headers.pop("x-sim-client-ip", None)
    assert result["error_codes"] == [code]
    capolids = json.loads(result["claims"])["access_token"]["capolids"]["values"]
    [entry] = by_correlation(diag, result["correlation_id"])
    assert entry["userPrincipalName"] == upn and entry["status"]["errorCode"] == code
    assert entry["status"]["failureReason"] and not entry["status"]["failureReason"].startswith("AADSTS")
    assert entry["conditionalAccessStatus"] == "failure"
    [failed] = [p for p in entry["appliedConditionalAccessPolicies"] if p["result"] == "failure"]
    assert (failed["displayName"], failed["enforcedGrantControls"], [failed["id"]]) == (display_name, [grant], capolids)
    policy = diag(f"/identity/conditionalAccess/policies/{failed['id']}").json()
    assert (policy["displayName"], policy["state"]) == (display_name, "enabled")
    assert policy["grantControls"]["builtInControls"] == [grant.lower()]
    user_id = next(u["id"] for t in sim.control.scenario()["tenants"] for u in t["users"] if u["upn"] == upn)
    assert policy["conditions"]["users"]["includeUsers"] == [user_id]


def test_filters_by_user_and_time_and_pages_with_next_links(sim, sim_session, diag):
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    cids = [str(uuid.uuid4()) for _ in range(5)]
    for cid in cids:
        ropc_raw(sim_session, CONTOSO, f"reader@{C}", PASSWORD, correlation_id=cid)
    ropc_raw(sim_session, CONTOSO, f"spadmin@{C}", PASSWORD, correlation_id=str(uuid.uuid4()))
    since = before.strftime("%Y-%m-%dT%H:%M:%SZ")
    resp = diag("/auditLogs/signIns", **{"$filter": f"userPrincipalName eq 'reader@{C}' and createdDateTime ge {since}",
                                         "$top": "2"})
    pages = [resp.json()]
    while "@odata.nextLink" in pages[-1]:
        assert len(pages) < 10
        nxt = pages[-1]["@odata.nextLink"]
        assert nxt.startswith(f"{GRAPH}/v1.0/auditLogs/signIns?") and "$skiptoken=" in nxt
        pages.append(diag(None, url=nxt).json())
    assert [len(p["value"]) for p in pages] == [2, 2, 1]
    seen = [e["correlationId"] for p in pages for e in p["value"]]
    assert seen == list(reversed(cids))  # newest first
    times = [e["createdDateTime"] for p in pages for e in p["value"]]
    assert times == sorted(times, reverse=True)
    later = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert diag("/auditLogs/signIns", **{"$filter": f"createdDateTime ge {later}"}).json()["value"] == []
    both = diag("/auditLogs/signIns", **{
        "$filter": f"(userPrincipalName eq 'reader@{C}') and correlationId eq '{cids[2]}'"}).json()["value"]
    assert [e["correlationId"] for e in both] == [cids[2]]
    assert diag("/auditLogs/signIns", **{"$filter": f"startsWith(userPrincipalName,'spadmin@')"}).json()["value"]
    bad = diag("/auditLogs/signIns", **{"$filter": "nosuchProperty eq 'x'"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadRequest"


def test_an_entry_is_listed_only_after_the_ingestion_delay(sim, sim_session, diag):
    sim.control.patch_scenario({"settings": {"signInLogDelaySeconds": 2}})
    cid = str(uuid.uuid4())
    signed_in = time.time()
    ropc_raw(sim_session, CONTOSO, f"admin@{C}", PASSWORD, correlation_id=cid)
    assert by_correlation(diag, cid) == []
    [entry] = wait_until(lambda: by_correlation(diag, cid), timeout=15, interval=0.2)
    assert time.time() - signed_in >= 2 - 0.05
    created = datetime.strptime(entry["createdDateTime"][:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)
    assert abs(created.timestamp() - signed_in) < 2


def test_legacy_sts_sign_ins_are_in_the_log_as_other_clients(sim, sim_session, diag):
    sim_session.post("https://login.microsoftonline.com/extSTS.srf",
                     data=rst_envelope(f"mfa@{C}", PASSWORD, "https://contoso.sharepoint.com").encode(),
                     headers={"Content-Type": "application/soap+xml; charset=utf-8"})
    entries = diag("/auditLogs/signIns", **{"$filter": f"userPrincipalName eq 'mfa@{C}'"}).json()["value"]
    assert entries[0]["clientAppUsed"] == "Other clients" and entries[0]["status"]["errorCode"] == 50076
    assert entries[0]["resourceId"] == "00000003-0000-0ff1-ce00-000000000000"


def test_service_principal_sign_ins_are_listed_by_beta_with_signineventtypes_only(sim, sim_session, diag):
    sim.control.clear_signins()
    assert "access_token" in app_token(sim, sim_session, APP_BACKUP)
    flt = f"appId eq '{APP_BACKUP}'"
    assert diag("/auditLogs/signIns", **{"$filter": flt}).json()["value"] == []
    assert diag("/auditLogs/signIns", version="beta", **{"$filter": flt}).json()["value"] == []
    sp = diag("/auditLogs/signIns", version="beta",
              **{"$filter": f"signInEventTypes/any(t: t eq 'servicePrincipal') and {flt}"}).json()
    assert sp["@odata.context"] == f"{GRAPH}/beta/$metadata#auditLogs/signIns"
    [entry] = sp["value"]
    assert_types(entry, {**SIGN_IN_FIELDS, **BETA_FIELDS})
    assert entry["signInEventTypes"] == ["servicePrincipal"] and entry["isInteractive"] is False
    assert (entry["servicePrincipalName"], entry["clientCredentialType"]) == ("M365 Backup (demo)", "clientAssertion")
    assert entry["servicePrincipalId"] == stable_id("sp", CONTOSO, APP_BACKUP)
    assert entry["userPrincipalName"] is None and entry["status"]["errorCode"] == 0
    v1 = diag("/auditLogs/signIns", **{"$filter": "signInEventTypes/any(t: t eq 'servicePrincipal')"})
    assert v1.status_code == 400
    users = diag("/auditLogs/signIns", version="beta",
                 **{"$filter": "signInEventTypes/any(t: t eq 'interactiveUser' or t eq 'nonInteractiveUser')"})
    assert all(e["signInEventTypes"] == ["interactiveUser"] for e in users.json()["value"])


def test_a_workload_identity_block_is_in_the_service_principal_log(sim, sim_session, diag):
    sim.control.add_policy(CONTOSO, {"name": "Block the backup app", "servicePrincipals": {"include": [APP_BACKUP]},
                                     "grant": "block"})
    assert app_token(sim, sim_session, APP_BACKUP)["error_codes"] == [53003]
    [entry] = diag("/auditLogs/signIns", version="beta", **{
        "$filter": f"signInEventTypes/any(t: t eq 'servicePrincipal') and appId eq '{APP_BACKUP}'"}).json()["value"]
    assert entry["status"]["errorCode"] == 53003 and entry["conditionalAccessStatus"] == "failure"
    assert [(p["displayName"], p["result"]) for p in entry["appliedConditionalAccessPolicies"]] == [
        ("Block the backup app", "failure")]
    policy = diag(f"/identity/conditionalAccess/policies/{entry['appliedConditionalAccessPolicies'][0]['id']}").json()
    assert policy["conditions"]["clientApplications"]["includeServicePrincipals"] == [
        stable_id("sp", CONTOSO, APP_BACKUP)]
    assert policy["conditions"]["users"]["includeUsers"] == ["None"]


# ---------------------------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("app, path, code, message", [
    (APP_BACKUP, "/auditLogs/signIns", "Authentication_MSGraphPermissionMissing",
     "Calling principal does not have required MSGraph permissions AuditLog.Read.All"),
    (APP_BACKUP, "/identity/conditionalAccess/policies", "AccessDenied",
     "You cannot perform the requested operation, required scopes are missing in the token."),
    (APP_BACKUP, "/identity/conditionalAccess/namedLocations", "AccessDenied",
     "You cannot perform the requested operation, required scopes are missing in the token."),
    (APP_BACKUP, "/policies/identitySecurityDefaultsEnforcementPolicy", "Authorization_RequestDenied",
     "Insufficient privileges to complete the operation."),
    (APP_NO_CONSENT, "/auditLogs/signIns", "Authentication_MSGraphPermissionMissing",
     "Calling principal does not have required MSGraph permissions AuditLog.Read.All"),
])
def test_missing_permissions_get_graphs_403(diag, app, path, code, message):
    resp = diag(path, app=app)
    assert resp.status_code == 403
    error = resp.json()["error"]
    assert (error["code"], error["message"]) == (code, message)
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}


def test_a_tenant_without_p1_gets_the_non_premium_403(diag):
    for version in ("v1.0", "beta"):
        resp = diag("/auditLogs/signIns", app=APP_DIAGNOSTICS_NO_P1, tenant=LITWARE, version=version)
        assert resp.status_code == 403
        assert resp.json()["error"]["code"] == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
        assert resp.json()["error"]["message"] == "Neither tenant is B2C or tenant doesn't have premium license"
    # the policies are still readable (none in litware)
    assert diag("/identity/conditionalAccess/policies", app=APP_DIAGNOSTICS_NO_P1, tenant=LITWARE).json()["value"] == []


def test_granting_p1_opens_the_log(sim, diag):
    sim.control.patch_tenant(LITWARE, {"licenses": ["aadPremiumP1"]})
    assert diag("/auditLogs/signIns", app=APP_DIAGNOSTICS_NO_P1, tenant=LITWARE).status_code == 200


def test_applied_policies_need_a_conditional_access_read_permission(sim, sim_session, diag):
    sim.control.patch_app(APP_DIAGNOSTICS, {"permissions": {"graph": ["AuditLog.Read.All"]}})
    result = ropc(sim_session, CONTOSO, f"camfa@{C}", PASSWORD)
    [entry] = by_correlation(diag, result["correlation_id"])
    assert entry["appliedConditionalAccessPolicies"] == [] and entry["conditionalAccessStatus"] == "failure"


# ---------------------------------------------------------------------------------------------- policies

def test_conditional_access_policies_in_graphs_shape(sim, diag):
    body = diag("/identity/conditionalAccess/policies").json()
    assert body["@odata.context"] == f"{GRAPH}/v1.0/$metadata#identity/conditionalAccess/policies"
    scenario = sim.control.scenario()["tenants"][1]["conditionalAccess"]
    assert [p["id"] for p in body["value"]] == [p["id"] for p in scenario]
    assert all(p["id"] == stable_id("policy", CONTOSO, p["name"]) for p in scenario)
    for p in body["value"]:
        assert set(p) == POLICY_FIELDS and set(p["conditions"]) == CONDITION_FIELDS
        assert set(p["conditions"]["users"]) == USER_CONDITION_FIELDS
        assert p["grantControls"]["operator"] == "OR" and len(p["grantControls"]["builtInControls"]) == 1
        assert p["state"] in ("enabled", "disabled", "enabledForReportingButNotEnforced")
    policies = {p["displayName"]: p for p in body["value"]}
    assert policies["Block legacy authentication (report-only)"]["state"] == "enabledForReportingButNotEnforced"
    assert policies["Block legacy authentication (report-only)"]["conditions"]["clientAppTypes"] == [
        "exchangeActiveSync", "other"]
    assert policies["Require a domain-joined device"]["grantControls"]["builtInControls"] == ["domainJoinedDevice"]
    # Microsoft-managed: the display name says so; no other policy carries the prefix
    assert [n for n in policies if n.startswith("Microsoft-managed: ")] == [MM_DISPLAY]
    assert (policies[MM_DISPLAY]["createdDateTime"], policies[MM_DISPLAY]["modifiedDateTime"]) == (
        "2026-01-12T08:30:00Z", "2026-02-26T08:30:00Z")
    # the location policy excludes the trusted named location that holds the head office range
    blocked = policies["Block sign-in outside trusted locations"]["conditions"]["locations"]
    assert blocked["includeLocations"] == ["All"]
    locations = diag("/identity/conditionalAccess/namedLocations").json()
    assert locations["@odata.context"] == f"{GRAPH}/v1.0/$metadata#identity/conditionalAccess/namedLocations"
    trusted = {loc["id"]: loc for loc in locations["value"]}
    [location_id] = blocked["excludeLocations"]
    loc = trusted[location_id]
    assert (loc["@odata.type"], loc["isTrusted"], loc["ipRanges"]) == (
        "#microsoft.graph.ipNamedLocation", True,
        [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "192.0.2.0/24"}])
    assert set(loc) == {"@odata.type", "id", "displayName", "createdDateTime", "modifiedDateTime", "isTrusted",
                        "ipRanges"}
    assert diag(f"/identity/conditionalAccess/namedLocations/{location_id}").json()["id"] == location_id
    assert diag("/identity/conditionalAccess/policies", version="beta").status_code == 200


def test_when_microsoft_switches_a_managed_policy_its_state_and_date_change(sim, sim_session, diag):
    policy_id = stable_id("policy", CONTOSO, MM_POLICY)
    sim.control.patch_policy(CONTOSO, MM_POLICY, {"state": "reportOnly"})
    before = diag(f"/identity/conditionalAccess/policies/{policy_id}").json()
    assert before["state"] == "enabledForReportingButNotEnforced"
    assert before["modifiedDateTime"] > "2026-02-26T08:30:00Z"
    cid = str(uuid.uuid4())
    assert ropc_raw(sim_session, CONTOSO, f"mmpolicy@{C}", PASSWORD, correlation_id=cid).status_code == 200
    [entry] = by_correlation(diag, cid)
    assert [p["result"] for p in entry["appliedConditionalAccessPolicies"] if p["id"] == policy_id] == [
        "reportOnlyFailure"]
    sim.control.patch_policy(CONTOSO, MM_POLICY, {"state": "on"})  # Microsoft turns it on
    after = diag(f"/identity/conditionalAccess/policies/{policy_id}").json()
    assert after["state"] == "enabled" and after["modifiedDateTime"] >= before["modifiedDateTime"]
    assert ropc(sim_session, CONTOSO, f"mmpolicy@{C}", PASSWORD)["error_codes"] == [50076]
    # the one change that lets the account through: exclude it (allowed on Microsoft-managed policies)
    sim.control.patch_policy(CONTOSO, MM_POLICY, {"users": {"exclude": [f"mmpolicy@{C}"]}})
    assert "access_token" in ropc(sim_session, CONTOSO, f"mmpolicy@{C}", PASSWORD)
    excluded = diag(f"/identity/conditionalAccess/policies/{policy_id}").json()["conditions"]["users"]["excludeUsers"]
    assert excluded == [next(u["id"] for u in sim.control.scenario()["tenants"][1]["users"]
                             if u["upn"] == f"mmpolicy@{C}")]


def test_an_unknown_policy_is_404(diag):
    assert diag(f"/identity/conditionalAccess/policies/{uuid.uuid4()}").status_code == 404


# ---------------------------------------------------------------------------------------------- security defaults

def test_security_defaults_policy(sim, diag):
    body = diag("/policies/identitySecurityDefaultsEnforcementPolicy").json()
    assert set(body) == {"@odata.context", "id", "displayName", "description", "isEnabled"}
    assert body["@odata.context"] == f"{GRAPH}/v1.0/$metadata#policies/identitySecurityDefaultsEnforcementPolicy"
    assert (body["id"], body["displayName"], body["isEnabled"]) == (
        "00000000-0000-0000-0000-000000000005", "Security Defaults", False)
    sim.control.add_app(ADATUM, {"appId": "c0ffee00-0000-4000-8000-0000000000ad", "consented": True,
                                 "certificates": [{"generated": "demo-app"}],
                                 "permissions": {"graph": ["Policy.Read.All"]}})
    adatum = diag("/policies/identitySecurityDefaultsEnforcementPolicy", app="c0ffee00-0000-4000-8000-0000000000ad",
                  tenant=ADATUM).json()
    assert adatum["isEnabled"] is True
