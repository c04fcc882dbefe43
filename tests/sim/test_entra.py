"""Entra ID fidelity: the real msal against the simulator, outcomes driven by scenario state."""
from __future__ import annotations

import jwt
import pytest

from .helpers import (ADATUM, APP_PASSWORD, CONTOSO, FABRIKAM, GLOBAL_ADMIN, LOGIN, PASSWORD, PUBLIC_CLIENT,
                      ropc)

C = "contoso.onmicrosoft.com"


@pytest.mark.parametrize("tenant, upn, password, code", [
    (CONTOSO, f"admin@{C}", PASSWORD, None),
    (CONTOSO, f"spadmin@{C}", PASSWORD, None),
    (CONTOSO, f"reader@{C}", PASSWORD, None),
    (CONTOSO, f"admin@{C}", "wrong-password", 50126),
    (CONTOSO, f"mfa@{C}", PASSWORD, 50076),
    (CONTOSO, f"mfa@{C}", APP_PASSWORD, 50126),          # app passwords are rejected by the password grant
    (CONTOSO, f"camfa@{C}", PASSWORD, 50076),
    (CONTOSO, f"blocked@{C}", PASSWORD, 53003),
    (CONTOSO, f"locked@{C}", PASSWORD, 50053),
    (CONTOSO, f"expired@{C}", PASSWORD, 50055),
    (CONTOSO, f"disabled@{C}", PASSWORD, 50057),
    (CONTOSO, f"nobody@{C}", PASSWORD, 50034),
    (CONTOSO, f"device@{C}", PASSWORD, 53000),
    (CONTOSO, f"domainjoined@{C}", PASSWORD, 53001),
    (CONTOSO, f"mfareg@{C}", PASSWORD, 50079),
    ("contoso.onmicrosoft.com", f"admin@{C}", PASSWORD, None),
    ("organizations", f"admin@{C}", PASSWORD, None),
    (FABRIKAM, "admin@fabrikam.onmicrosoft.com", PASSWORD, None),
    (FABRIKAM, f"admin@{C}", PASSWORD, 50034),            # a user of another tenant
    (ADATUM, "admin@adatum.onmicrosoft.com", PASSWORD, 50076),  # security defaults: MFA for admins
    (ADATUM, "user@adatum.onmicrosoft.com", PASSWORD, None),
])
def test_password_grant_outcomes(sim, sim_session, tenant, upn, password, code):
    result = ropc(sim_session, tenant, upn, password)
    if code is None:
        assert "access_token" in result, result
        claims = jwt.decode(result["access_token"], options={"verify_signature": False})
        assert claims["upn"] == upn and claims["aud"] == "https://graph.microsoft.com"
        assert result["id_token_claims"]["preferred_username"] == upn
    else:
        assert result.get("error_codes") == [code], result
        assert result["error_description"].startswith(f"AADSTS{code}: ")


def test_error_json_has_the_real_shape(sim, sim_session):
    result = ropc(sim_session, CONTOSO, f"mfa@{C}", PASSWORD)
    assert result["error"] == "invalid_grant" and result["suberror"] == "basic_action"
    first, trace, correlation, stamp = result["error_description"].split("\r\n")
    assert first == ("AADSTS50076: Due to a configuration change made by your administrator, or because you "
                     "moved to a new location, you must use multi-factor authentication to access "
                     "'00000003-0000-0000-c000-000000000000'.")
    assert trace == f"Trace ID: {result['trace_id']}"
    assert correlation == f"Correlation ID: {result['correlation_id']}"
    assert stamp == f"Timestamp: {result['timestamp']}"
    assert result["error_uri"] == "https://login.microsoftonline.com/error?code=50076"
    # msal sends client-request-id; the service echoes it as correlation_id
    log = sim.control.signins(f"mfa@{C}")
    assert log[-1]["correlationId"] == result["correlation_id"]


def test_conditional_access_block_carries_claims_and_message_only(sim, sim_session):
    result = ropc(sim_session, CONTOSO, f"blocked@{C}", PASSWORD)
    assert result["suberror"] == "message_only"
    assert "capolids" in result["claims"]


def test_mfa_required_by_conditional_access_names_the_policy(sim, sim_session):
    import json

    per_user = ropc(sim_session, CONTOSO, f"mfa@{C}", PASSWORD)
    assert per_user["error_codes"] == [50076] and "claims" not in per_user
    by_policy = ropc(sim_session, CONTOSO, f"camfa@{C}", PASSWORD)
    assert by_policy["error_codes"] == [50076] and by_policy["suberror"] == "basic_action"
    policy_id = next(p["id"] for t in sim.control.scenario()["tenants"] for p in t["conditionalAccess"]
                     if p["name"] == "Require MFA for camfa")
    assert json.loads(by_policy["claims"]) == {"access_token": {"capolids": {"essential": True,
                                                                             "values": [policy_id]}}}


def test_unknown_tenant_fails_discovery_with_90002(sim, sim_session):
    resp = sim_session.get(f"{LOGIN}/99999999-9999-4999-8999-999999999999/v2.0/.well-known/openid-configuration")
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "invalid_tenant" and body["error_codes"] == [90002]
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        ropc(sim_session, "99999999-9999-4999-8999-999999999999", f"admin@{C}", PASSWORD)


@pytest.mark.parametrize("tenant", [CONTOSO, "contoso.onmicrosoft.com", "common", "organizations"])
def test_oidc_discovery(sim_session, m365sim, tenant):
    doc = sim_session.get(f"{LOGIN}/{tenant}/v2.0/.well-known/openid-configuration").json()
    expected = CONTOSO if tenant.startswith("contoso") else tenant
    assert doc["token_endpoint"] == f"{LOGIN}/{expected}/oauth2/v2.0/token"
    assert doc["issuer"] == f"{LOGIN}/{CONTOSO if expected == CONTOSO else '{tenantid}'}/v2.0"


def test_tokens_verify_against_jwks(sim, sim_session):
    result = ropc(sim_session, CONTOSO, f"admin@{C}", PASSWORD)
    jwks = sim_session.get(f"{LOGIN}/{CONTOSO}/discovery/v2.0/keys").json()
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(result["access_token"], key.key, algorithms=["RS256"],
                        audience="https://graph.microsoft.com")
    assert claims["tid"] == CONTOSO and claims["appid"] == PUBLIC_CLIENT
    assert GLOBAL_ADMIN in claims["wids"]
    assert claims["iss"] == f"https://sts.windows.net/{CONTOSO}/" and claims["exp"] > claims["iat"]


def test_user_realm(sim_session, m365sim):
    known = sim_session.get(f"{LOGIN}/common/userrealm/admin@{C}?api-version=1.0").json()
    assert known["account_type"] == "Managed" and known["domain_name"] == C
    assert sim_session.get(f"{LOGIN}/common/userrealm/a@nowhere.example?api-version=1.0").json()[
        "account_type"] == "Unknown"
    srf = sim_session.post(f"{LOGIN}/GetUserRealm.srf", data={"login": f"admin@{C}", "xml": "1"})
    assert "<NameSpaceType>Managed</NameSpaceType>" in srf.text
    assert sim_session.get(f"{LOGIN}/GetUserRealm.srf", params={"login": "x@nowhere.example"}).json()[
        "NameSpaceType"] == "Unknown"


def test_client_ip_decides_location_policies(sim, sim_session):
    upn = f"blocked@{C}"
    sim_session.headers["x-sim-client-ip"] = "192.0.2.10"        # inside the trusted range
    assert "access_token" in ropc(sim_session, CONTOSO, upn, PASSWORD)
    del sim_session.headers["x-sim-client-ip"]
    # exclude the product's reserved range from the policy (spec Message 1, third solution)
    sim.control.patch_policy(C, "Block sign-in outside trusted locations",
                             {"locations": {"excludedRanges": ["203.0.113.0/28"]}})
    assert "access_token" in ropc(sim_session, CONTOSO, upn, PASSWORD)
    sim.control.patch_network({"egressIp": "198.51.100.200"})
    assert ropc(sim_session, CONTOSO, upn, PASSWORD)["error_codes"] == [53003]
    # exclude the user instead (spec Message 1, second solution)
    sim.control.patch_policy(C, "Block sign-in outside trusted locations", {"users": {"exclude": [upn]}})
    assert "access_token" in ropc(sim_session, CONTOSO, upn, PASSWORD)


def test_state_changes_change_outcomes(sim, sim_session):
    upn = f"mfa@{C}"
    assert ropc(sim_session, CONTOSO, upn, PASSWORD)["error_codes"] == [50076]
    sim.control.patch_user(upn, {"perUserMfa": "disabled"})
    assert "access_token" in ropc(sim_session, CONTOSO, upn, PASSWORD)
    sim.control.patch_policy(C, "Require MFA for camfa", {"state": "reportOnly"})
    assert "access_token" in ropc(sim_session, CONTOSO, f"camfa@{C}", PASSWORD)
    sim.control.patch_user(f"admin@{C}", {"state": "locked"})
    assert ropc(sim_session, CONTOSO, f"admin@{C}", PASSWORD)["error_codes"] == [50053]


def test_report_only_policy_is_logged_not_enforced(sim, sim_session):
    sim.control.clear_signins()
    assert "access_token" in ropc(sim_session, CONTOSO, f"reader@{C}", PASSWORD)
    entry = sim.control.signins(f"reader@{C}")[-1]
    policies = {p["name"]: p["result"] for p in entry["conditionalAccess"]}
    # the report-only policy targets legacy clients only; ROPC is a modern client
    assert policies["Block legacy authentication (report-only)"] == "notApplied"
    assert entry["path"] == "ropc" and entry["result"] == "success" and entry["clientIp"] == "203.0.113.5"


def test_client_credentials_with_a_wrong_secret(sim, sim_session):
    resp = sim_session.post(f"{LOGIN}/{CONTOSO}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
        "client_secret": "nope", "scope": "https://vault.azure.net/.default"})
    assert resp.status_code == 400 and resp.json()["error_codes"] == [700016]   # not an app of Contoso
    resp = sim_session.post(f"{LOGIN}/00000000-0000-4000-8000-0000000000aa/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
        "client_secret": "nope", "scope": "https://vault.azure.net/.default"})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    assert resp.json()["error_codes"] == [7000215]


def test_refresh_token_grant(sim, sim_session):
    import msal

    app = msal.PublicClientApplication(PUBLIC_CLIENT, authority=f"{LOGIN}/{CONTOSO}", http_client=sim_session,
                                       instance_discovery=False)
    first = app.acquire_token_by_username_password(f"admin@{C}", PASSWORD, scopes=["User.Read"])
    account = app.get_accounts()[0]
    again = app.acquire_token_silent(["User.Read"], account=account, force_refresh=True)
    assert again and again["access_token"] != first["access_token"]
