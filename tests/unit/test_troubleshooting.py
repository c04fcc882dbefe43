"""The troubleshooting catalog: every rule reachable, the spec's exact words, unknown codes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.domain.profile import limitation_catalog
from shared.domain.troubleshooting import (
    CATALOG_PATH, UNKNOWN_FAILURE, Catalog, Signal, classify, find_rule, load_catalog)

CATALOG = load_catalog()
SPEC = Path("/work/shared/spec/mfa-service-account-profiles.txt")
PARAMS = {"reservedIpRanges": "203.0.113.0/28, 198.51.100.16/29", "retryAfterSeconds": 30,
          "tenantId": "11111111-1111-4111-8111-111111111111", "correlationId": "cid-1",
          "description": "something", "roles": "none", "adminCenterUrl": "https://contoso-admin.sharepoint.com",
          "step": "Microsoft Entra ID (sign-in)",
          "adminConsentUrl": "https://login.microsoftonline.com/11111111-1111-4111-8111-111111111111/adminconsent"
                             "?client_id=c0ffee00-0000-4000-8000-000000000002",
          "missingPermissions": "Microsoft Graph: Sites.FullControl.All; SharePoint: Sites.FullControl.All",
          "sharepointUrl": "https://contoso.sharepoint.com"}

_SIGNAL_FIELDS = {"code": "code", "httpStatus": "http_status", "path": "path", "mfaEnabled": "mfa_enabled",
                  "step": "step", "passwordShape": "password_shape", "caChallenge": "ca_challenge"}


def _first(value):
    value = value[0] if isinstance(value, list) else value
    if isinstance(value, str) and value.endswith("xx"):
        return int(value[0]) * 100 + 2
    return value


def signal_for(rule) -> Signal:
    """The plainest signal that satisfies ``rule``'s conditions (an HTTP answer unless it says)."""
    return Signal(**{"http_status": 200, **{_SIGNAL_FIELDS[k]: _first(v) for k, v in rule["when"].items()}})


@pytest.mark.parametrize("rule", CATALOG.rules, ids=[r["id"] for r in CATALOG.rules])
def test_every_rule_is_reachable_and_renders(rule):
    # No earlier rule shadows this one, and its texts fill without leftovers.
    diagnosis = classify(signal_for(rule), params=PARAMS)
    assert diagnosis.rule_id == rule["id"]
    assert diagnosis.message_id == rule["messageId"]
    assert diagnosis.variant == rule.get("variant")
    entry = CATALOG.messages[rule["messageId"]]
    assert diagnosis.status in ("failed", "error") or (diagnosis.status == "passed" and entry.get("warning"))
    texts = [diagnosis.message, diagnosis.cause or "", diagnosis.solutions_intro or "", *diagnosis.solutions]
    assert diagnosis.solutions, "every message says what to do"
    assert not any("{" in t or "}" in t for t in texts), texts


# signal -> (messageId, variant, cause starts with)
EXPECTED = [
    (Signal("AADSTS50126", 400, "modern"), "CHECK_MFA_OR_APP_PASSWORD", None, "Microsoft Entra ID did not accept"),
    (Signal("AADSTS50126", 400, "modern", password_shape="appPassword"), "CHECK_MFA_OR_APP_PASSWORD", None,
     "The password has the shape of an app password (16 lowercase letters) while MFA is off"),
    (Signal("AADSTS50126", 200, "legacy", True, "sts", "appPassword"), "INVALID_APP_PASSWORD", None,
     "Microsoft Entra ID did not accept the user name and app password"),
    (Signal("AADSTS50126", 200, "legacy", True, "sts", "other"), "INVALID_APP_PASSWORD", None,
     "The password entered is not in the shape of an app password"),
    (Signal("AADSTS50076", 400, "modern"), "MFA_ENABLED", "perUser", "Microsoft Entra ID asks for multi-factor"),
    (Signal("AADSTS50079", 400, "modern"), "MFA_ENABLED", "perUser", "Microsoft Entra ID asks the account to register"),
    (Signal("AADSTS50076", 400, "modern", ca_challenge=True), "MFA_ENABLED", "conditionalAccess",
     "Microsoft Entra ID asks for multi-factor authentication (AADSTS50076) because a Conditional Access"),
    (Signal("AADSTS50158", 400, "modern"), "MFA_ENABLED", "conditionalAccess", "An external multi-factor"),
    (Signal("AADSTS50076", 200, "legacy", True, "sts", "other"), "INVALID_APP_PASSWORD", None,
     "Microsoft Entra ID accepted the password but asked for multi-factor authentication"),
    (Signal("AADSTS50076", 200, "legacy", True, "sts", "appPassword"), "MFA_ENABLED", "conditionalAccess",
     "The app password was accepted, but multi-factor authentication is still required"),
    (Signal("AADSTS50079", 200, "legacy", True, "sts", "other"), "INVALID_APP_PASSWORD", None,
     "The account has not finished its multi-factor authentication registration"),
    (Signal("AADSTS53003", 400, "modern"), "ACCESS_POLICY_BLOCKED", None,
     "A Conditional Access policy blocked the sign-in (Microsoft Entra ID: AADSTS53003). If the policy"),
    (Signal("AADSTS53003", 200, "legacy", True, "sts"), "ACCESS_POLICY_BLOCKED", None,
     "A Conditional Access policy blocked the sign-in (Microsoft Entra ID: AADSTS53003). App passwords"),
    (Signal("AADSTS53000", 400), "ACCESS_POLICY_BLOCKED", None, "A Conditional Access policy requires a compliant"),
    (Signal("AADSTS53001", 400), "ACCESS_POLICY_BLOCKED", None, "A Conditional Access policy requires a domain-joined"),
    (Signal("AADSTS530035", 200, "legacy", True, "sts"), "ACCESS_POLICY_BLOCKED", None, "Security defaults are on"),
    (Signal("AADSTS50053", 400), "ACCOUNT_LOCKED", None, "Microsoft Entra ID reported the account as locked"),
    (Signal("AADSTS50055", 400), "PASSWORD_EXPIRED", None, "Microsoft Entra ID reported the password as expired"),
    (Signal("AADSTS50057", 400), "ACCOUNT_DISABLED", None, "Microsoft Entra ID reported the account as disabled"),
    (Signal("AADSTS50034", 400), "USER_NOT_FOUND", None, "Microsoft Entra ID did not find the account"),
    (Signal("AADSTS90072", 400), "USER_NOT_FOUND", None, "The account comes from another identity provider"),
    (Signal("AADSTS90002", 400, step="discovery"), "TENANT_NOT_FOUND", None, "Microsoft Entra ID does not know"),
    (Signal("ROLE_INSUFFICIENT", 200, step="memberOf"), "INSUFFICIENT_ROLE", None, "Directory roles of the account: none"),
    (Signal("SP_FORBIDDEN", 403, "legacy", True, "contextinfo"), "INSUFFICIENT_ROLE", None,
     "The account signed in, but the SharePoint Online admin center"),
    (Signal("IDCRL_RETIRED", 403, "legacy", True, "wsignin"), "LEGACY_AUTH_RETIRED", None, "SharePoint Online refused"),
    (Signal("SP_NO_AUTH_COOKIE", 200, "legacy", True, "wsignin"), "LEGACY_AUTH_BLOCKED", None, "SharePoint Online signed"),
    (Signal("SP_URL_NOT_SHAREPOINT", None, "legacy", True, "adminCenter"), "ADMIN_CENTER_UNREACHABLE", None,
     "https://contoso-admin.sharepoint.com is not a SharePoint Online address"),
    (Signal("DNS_FAILURE", None, "legacy", True, "wsignin"), "ADMIN_CENTER_UNREACHABLE", None,
     "https://contoso-admin.sharepoint.com could not be reached (DNS_FAILURE)"),
    (Signal("DNS_FAILURE", None, "modern", step="token"), "SERVICE_UNAVAILABLE", None, "Microsoft Entra ID (sign-in) could"),
    (Signal("SP_NOT_FOUND", 404, "legacy", True, "wsignin"), "ADMIN_CENTER_UNREACHABLE", None,
     "https://contoso-admin.sharepoint.com answered HTTP 404"),
    (Signal(None, 429, "modern", step="token"), "THROTTLED", None, "Microsoft Entra ID (sign-in) answered HTTP 429"),
    (Signal("AADSTS50126", 429, "modern", step="token"), "THROTTLED", None, "Microsoft Entra ID (sign-in) answered HTTP 429"),
    (Signal(None, 503, "legacy", True, "contextinfo"), "SERVICE_UNAVAILABLE", None, "Microsoft Entra ID (sign-in) answered HTTP 503"),
    (Signal(None, 500, "modern", step="memberOf"), "SERVICE_UNAVAILABLE", None, None),
    (Signal("TIMEOUT", None, "modern", step="token"), "SERVICE_UNAVAILABLE", None, "Microsoft Entra ID (sign-in) did not answer"),
    (Signal("INPUT_ADMIN_CENTER_URL_REQUIRED", path="input", mfa_enabled=True), "ADMIN_CENTER_URL_REQUIRED", None, None),
    (Signal("GRAPH_FORBIDDEN", 403, step="memberOf"), "ROLE_NOT_READABLE", None, "Microsoft Graph answered"),
]


@pytest.mark.parametrize("signal,message_id,variant,cause", EXPECTED,
                         ids=[f"{s.code}-{s.http_status}-{s.path}-{s.password_shape}" for s, *_ in EXPECTED])
def test_classification(signal, message_id, variant, cause):
    diagnosis = classify(signal, params=PARAMS)
    assert (diagnosis.message_id, diagnosis.variant) == (message_id, variant)
    if cause:
        assert diagnosis.cause.startswith(cause), diagnosis.cause


def test_status_error_only_for_throttling_and_availability():
    statuses = {mid: entry["status"] for mid, entry in CATALOG.messages.items()}
    assert {m for m, s in statuses.items() if s == "error"} == {"THROTTLED", "SERVICE_UNAVAILABLE"}


@pytest.mark.parametrize("code,status", [("AADSTS99999", 400), ("SP_TEAPOT", 418), (None, 409)])
def test_unknown_failure_keeps_the_code(code, status):
    diagnosis = classify(Signal(code, status), params={"correlationId": "cid-9", "description": "Odd."})
    assert diagnosis.message_id == UNKNOWN_FAILURE and diagnosis.status == "failed"
    assert diagnosis.rule_id is None
    shown = code or f"HTTP {status}"
    assert shown in diagnosis.message and shown in diagnosis.cause
    assert any("cid-9" in s for s in diagnosis.solutions)


def test_classify_is_pure():
    signal = Signal("AADSTS53003", 400, "modern")
    assert classify(signal, params=PARAMS) == classify(signal, params=PARAMS)


def test_ranges_are_quoted_where_reserved_ips_are_the_answer():
    for code in ("AADSTS53003", "AADSTS53000", "AADSTS530035"):
        diagnosis = classify(Signal(code, 400, "modern"), params=PARAMS)
        assert "203.0.113.0/28, 198.51.100.16/29" in diagnosis.cause
    third = classify(Signal("AADSTS53003", 400), params=PARAMS).solutions[2]
    assert "GET /api/reserved-ip-addresses" in third and "203.0.113.0/28" in third


def test_legacy_messages_carry_the_ghost_guest_users_limitation():
    known = set(limitation_catalog())
    for mid in ("LEGACY_AUTH_BLOCKED", "LEGACY_AUTH_RETIRED"):
        assert "NO_GHOST_GUEST_USERS_RULE" in CATALOG.messages[mid]["limitations"]
    for entry in CATALOG.messages.values():
        assert set(entry.get("limitations", ())) <= known


def test_retired_gives_a_concrete_migration_path():
    diagnosis = classify(Signal("IDCRL_RETIRED", 200, "legacy", True, "sts"), params=PARAMS)
    text = " ".join(diagnosis.solutions)
    for needle in ("clear the Our organization uses multi-factor authentication checkbox",
                   "Sites.FullControl.All", "certificate", "reserved IP addresses", "Conditional Access"):
        assert needle in text
    assert "May 1, 2026" in diagnosis.cause and "MC1184649" in diagnosis.cause


def test_catalog_rejects_dangling_references():
    raw = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    raw["rules"].append({"id": "bad", "when": {"colour": "red"}, "messageId": "NOPE"})
    raw["rules"].append({"id": "bad2", "when": {"code": "X"}, "messageId": "MFA_ENABLED", "variant": "x",
                         "cause": "y"})
    with pytest.raises(ValueError) as err:
        Catalog.from_dict(raw)
    assert "unknown messageId 'NOPE'" in str(err.value)
    assert "unknown variant 'x'" in str(err.value) and "unknown cause 'y'" in str(err.value)


def test_http_status_families():
    assert find_rule(Signal(None, 502))["id"] == "http-5xx"
    assert find_rule(Signal(None, 404)) is None


# --- the spec's exact words -----------------------------------------------------------------

SPEC_TEXTS = {
    "ACCESS_POLICY_BLOCKED": ["Your organization has set access policies that block the validation.",
                              "Choose one of the following methods based on your scenario.",
                              "Delete or disable the access policies.",
                              "Edit the access policies to exclude the Microsoft 365 user set as the Service Account.",
                              "Edit the access policies to exclude the reserved IP addresses of AvePoint Online "
                              "Services. The reserved IP addresses can be downloaded in Administration > Security > "
                              "Reserved IP addresses."],
    "CHECK_MFA_OR_APP_PASSWORD": [
        "Check if this account has multi-factor authentication enabled or if you have entered an app password.",
        "If the account has multi-factor authentication enabled, choose one of the following methods based on "
        "your scenario.",
        "In the Enable MFA field, select the Our organization uses multi-factor authentication checkbox. Enter "
        "the app password in the Password field.",
        "If you do not want to select the Our organization uses multi-factor authentication checkbox, you need to "
        "disable multi-factor authentication for the Microsoft 365 user set as the Service Account.",
        "If the account does not have multi-factor authentication enabled and you haven’t entered an app "
        "password, check if the login password of the account is correct."],
    "MFA_ENABLED": [
        "This account has multi-factor authentication enabled.",
        "If this account has multi-factor authentication enabled on the multi-factor authentication interface, "
        "either select the Our organization uses multi-factor authentication checkbox in the Enable MFA field or "
        "disable multi-factor authentication for the Microsoft 365 user.",
        "If your Microsoft 365 tenant has enabled multi-factor authentication in Microsoft Entra conditional "
        "access policies, refer to the solution for Message 1 to either exclude the Service Account from the "
        "access policies or exclude AvePoint Online Services reserved IP addresses from the access policies."],
    "INVALID_APP_PASSWORD": [
        "The password is validated via Microsoft 365 API. Due to a Microsoft 365 API limitation, you may "
        "encounter the following issue: the password is checked as invalid here, but you can use this password "
        "to log into Microsoft 365 successfully. To resolve the issue, you must change your password in "
        "Microsoft 365, and then enter the new password here."],
    "ADMIN_CENTER_URL_REQUIRED": [
        "If the Our organization uses multi-factor authentication checkbox is selected, you must manually enter "
        "the SharePoint Online admin center URL in the text box."],
}


def _entry_texts(entry) -> list[str]:
    texts = [entry["message"], entry.get("solutionsIntro") or "", *entry.get("solutions", [])]
    for variant in entry.get("variants", {}).values():
        texts += variant.get("solutions", [])
    return texts


@pytest.mark.parametrize("message_id", sorted(SPEC_TEXTS))
def test_spec_words_are_in_the_catalog_verbatim(message_id):
    texts = _entry_texts(CATALOG.messages[message_id])
    for sentence in SPEC_TEXTS[message_id]:
        assert any(sentence in t for t in texts), sentence


@pytest.mark.skipif(not SPEC.exists(), reason="the product page is not available here")
@pytest.mark.parametrize("message_id", sorted(SPEC_TEXTS))
def test_spec_words_are_the_product_pages_words(message_id):
    spec = SPEC.read_text(encoding="utf-8").replace("**", "")
    for sentence in SPEC_TEXTS[message_id]:
        assert sentence in spec, sentence


def test_mfa_variants_split_the_spec_solutions():
    entry = CATALOG.messages["MFA_ENABLED"]
    per_user, ca = entry["variants"]["perUser"]["solutions"], entry["variants"]["conditionalAccess"]["solutions"]
    assert per_user[:1] == entry["solutions"][:1]
    assert ca[0] == entry["solutions"][1]
    # Each variant, like the whole message, ends with the way off user sign-in: the migration.
    migration = entry["solutions"][-1]
    assert "migrate" in migration and per_user[-1] == ca[-1] == migration


def test_the_retirement_points_to_the_migration():
    assert any("/migrate" in s for s in CATALOG.messages["LEGACY_AUTH_RETIRED"]["solutions"])



# --- client applications and app profiles: one row each, one parametrized test -----------------

# signal -> (messageId, cause name or None); path "app" is the client-credentials sign-in of an app profile
CLIENT_APP_EXPECTED = [
    (Signal("AADSTS700016", 400, "app"), "APP_NOT_FOUND", None),
    (Signal("AADSTS700016", 400, "modern"), "APP_NOT_FOUND", "userSignInClient"),
    (Signal("APP_NOT_FOUND", None, "app"), "APP_NOT_FOUND", None),
    (Signal("AADSTS65001", 400, "app"), "APP_CONSENT_MISSING", None),
    (Signal("AADSTS65001", 400, "modern"), "APP_CONSENT_MISSING", "userSignInClient"),
    (Signal("APP_ROLES_MISSING", 200, "app"), "APP_PERMISSION_MISSING", None),
    (Signal("APP_NO_ROLES", 200, "app"), "APP_CONSENT_MISSING", "noRoles"),
    (Signal("GRAPH_FORBIDDEN", 403, "app", step="sitesRoot"), "APP_PERMISSION_MISSING", "sitesRootForbidden"),
    (Signal("SP_FORBIDDEN", 403, "app", step="appOnlyWeb"), "APP_PERMISSION_MISSING", "appOnlyForbidden"),
    (Signal("SP_UNAUTHORIZED", 401, "app", step="appOnlyWeb"), "APP_ONLY_TOKEN_REFUSED", None),
    (Signal("GRAPH_UNAUTHORIZED", 401, "app", step="sitesRoot"), "SERVICE_UNAVAILABLE", "unexpectedAnswer"),
    (Signal(None, 429, "app", step="appOnlyWeb"), "THROTTLED", None),
    (Signal(None, 503, "app", step="sharePointToken"), "SERVICE_UNAVAILABLE", None),
    (Signal("AADSTS700027", 401, "app"), "CERTIFICATE_NOT_REGISTERED", None),
    (Signal("CERT_EXPIRED", None, "app"), "CERTIFICATE_EXPIRED", None),
    (Signal("CERT_EXPIRING", None, "app"), "CERTIFICATE_EXPIRING", None),
    (Signal("AADSTS7000112", 400, "app"), "APP_DISABLED", None),
    (Signal("AADSTS7000112", 400, "modern"), "APP_DISABLED", "userSignInClient"),
    (Signal("APP_DISABLED", None, "app"), "APP_DISABLED", None),
    (Signal("SP_APP_ONLY_REFUSED", 401, "app"), "APP_ONLY_TOKEN_REFUSED", None),
    (Signal("AADSTS7000218", 401, "modern"), "PUBLIC_CLIENT_FLOWS_DISABLED", None),
    (Signal("AADSTS7000215", 401, "app"), "APP_SECRET_INVALID", None),
    (Signal("AADSTS7000222", 401, "app"), "APP_SECRET_INVALID", "expired"),
    (Signal("AADSTS53003", 400, "app"), "ACCESS_POLICY_BLOCKED", "workloadIdentityPolicy"),
    (Signal("AADSTS700024", 401, "app"), "SERVICE_UNAVAILABLE", "assertionTime"),
    (Signal("AADSTS500011", 400, "app"), "TENANT_NOT_FOUND", "resourceNotInTenant"),
    (Signal("AADSTS50173", 400, "modern"), "SERVICE_UNAVAILABLE", "staleGrant"),
    (Signal("AADSTS70043", 400, "modern"), "SERVICE_UNAVAILABLE", "staleGrant"),
    (Signal("AADSTS700082", 400, "modern"), "SERVICE_UNAVAILABLE", "staleGrant"),
]


@pytest.mark.parametrize("signal, message_id, cause", CLIENT_APP_EXPECTED,
                         ids=[f"{s.code}-{s.path}" for s, *_ in CLIENT_APP_EXPECTED])
def test_client_application_failures(signal, message_id, cause):
    diagnosis = classify(signal, params=PARAMS)
    assert diagnosis.message_id == message_id
    entry = CATALOG.messages[message_id]
    expected_cause = entry["causes"][cause] if cause else entry["defaultCause"]
    assert diagnosis.cause.split("{")[0] and diagnosis.cause.startswith(expected_cause.split("{")[0])
    assert diagnosis.solutions and not any("{" in t for t in (diagnosis.message, diagnosis.cause, *diagnosis.solutions))


def test_app_texts_quote_the_consent_link_and_the_missing_permissions():
    consent = classify(Signal("APP_NO_ROLES", 200, "app"), params=PARAMS)
    assert any(PARAMS["adminConsentUrl"] in s for s in consent.solutions)
    assert PARAMS["missingPermissions"] in consent.cause
    missing = classify(Signal("APP_ROLES_MISSING", 200, "app"), params=PARAMS)
    assert PARAMS["missingPermissions"] in missing.cause
    assert any(PARAMS["missingPermissions"] in s and PARAMS["adminConsentUrl"] in s for s in missing.solutions)


def test_only_warnings_pass():
    passing = {mid for mid, entry in CATALOG.messages.items() if entry["status"] == "passed"}
    assert passing == {mid for mid, entry in CATALOG.messages.items() if entry.get("warning")} == {"CERTIFICATE_EXPIRING"}
    raw = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    raw["messages"]["APP_DISABLED"]["status"] = "passed"
    raw["messages"]["APP_NOT_FOUND"]["status"] = "fine"
    with pytest.raises(ValueError) as err:
        Catalog.from_dict(raw)
    assert "messages.APP_DISABLED: status 'passed'" in str(err.value)
    assert "messages.APP_NOT_FOUND: status 'fine'" in str(err.value)


def test_retired_never_sends_the_admin_to_the_modern_authentication_setting():
    diagnosis = classify(Signal("IDCRL_RETIRED", 403, "legacy", True, "wsignin"), params=PARAMS)
    texts = " ".join([diagnosis.message, diagnosis.cause or "", diagnosis.solutions_intro or "", *diagnosis.solutions])
    assert "don't use modern authentication" not in texts and "don’t use modern authentication" not in texts
    blocked = classify(Signal("SP_NO_AUTH_COOKIE", 403, "legacy", True, "wsignin"), params=PARAMS)
    assert "April 30, 2026" in blocked.cause


@pytest.mark.parametrize("codes, expected", [
    (["AADSTS70002", "AADSTS50126"], "AADSTS50126"),
    (["AADSTS70002", "AADSTS50053"], "AADSTS50053"),
    (["AADSTS50126"], "AADSTS50126"),
    (["AADSTS70002"], "AADSTS70002"),
    ([], None),
])
def test_most_specific_code(codes, expected):
    from shared.domain.troubleshooting import most_specific_code

    assert most_specific_code(codes) == expected


def test_unknown_code_is_not_repeated():
    diagnosis = classify(Signal("AADSTS9999999", 400, "modern"),
                         params={**PARAMS, "description": "AADSTS9999999: Something new happened."})
    assert diagnosis.cause == "AADSTS9999999: Something new happened."


# --- real error bodies, as the threads quote them (ids anonymised), through the product's parser ---
# Each row: (public source, token endpoint JSON, path, expected messageId, expected code)
_T = "\r\nTrace ID: 6ee9ec92-6726-422a-85ce-86a1a6502800\r\nCorrelation ID: 521b9148-40bc-455a-ace1-c13802e053eb\r\nTimestamp: 2024-12-03 13:51:30Z"
REAL_BODIES = [
    ("haystackeditor/haystack-editor#41",
     {"error": "invalid_client", "error_codes": [7000218],
      "error_description": "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'." + _T},
     "modern", "PUBLIC_CLIENT_FLOWS_DISABLED", "AADSTS7000218"),
    ("vibber-ai/fastapi-azure-auth#177",
     {"error": "invalid_grant", "error_codes": [65001],
      "error_description": "AADSTS65001: The user or administrator has not consented to use the application with ID "
                           "'00000000-0000-0000-0000-000000000001' named 'demo'. Send an interactive authorization request "
                           "for this user and resource." + _T},
     "modern", "APP_CONSENT_MISSING", "AADSTS65001"),
    ("MicrosoftDocs/azure-docs#21690",
     {"error": "unauthorized_client", "error_codes": [700016],
      "error_description": "AADSTS700016: Application with identifier 'bbe6ea72-3498-452b-9125-787be7a187d4' was not found "
                           "in the directory 'XXXXXX'. This can happen if the application has not been installed by the "
                           "administrator of the tenant or consented to by any user in the tenant. You may have sent your "
                           "authentication request to the wrong tenant." + _T},
     "modern", "APP_NOT_FOUND", "AADSTS700016"),
    ("sjkp/letsencrypt-siteextension#117 (ADAL-era multi-code text)",
     {"error": "invalid_client",
      "error_description": "AADSTS70002: Error validating credentials. AADSTS50012: Invalid client secret is provided." + _T},
     "app", "UNKNOWN_FAILURE", "AADSTS50012"),
    ("fuel9/DisplayMonkey#50 (multi-code)",
     {"error": "invalid_grant", "error_codes": [70002, 50126],
      "error_description": "AADSTS70002: Error validating credentials. AADSTS50126: Invalid username or password" + _T},
     "modern", "CHECK_MFA_OR_APP_PASSWORD", "AADSTS50126"),
    ("fuel9/DisplayMonkey#50 (multi-code, lockout)",
     {"error": "invalid_grant", "error_codes": [70002, 50053],
      "error_description": "AADSTS70002: Error validating credentials. AADSTS50053: You've tried to sign in too many "
                           "times with an incorrect user ID or password." + _T},
     "modern", "ACCOUNT_LOCKED", "AADSTS50053"),
    ("liprec/vsts-release-aas#119",
     {"error": "invalid_client", "error_codes": [7000222],
      "error_description": "AADSTS7000222: The provided client secret keys for app '***' are expired. Visit the Azure "
                           "portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using "
                           "certificate credentials for added security: https://aka.ms/certCreds." + _T},
     "app", "APP_SECRET_INVALID", "AADSTS7000222"),
    ("AzureAD/microsoft-authentication-library-for-js#8339 / keycloak/keycloak#19425",
     {"error": "invalid_client", "error_codes": [700027],
      "error_description": "AADSTS700027: The certificate with identifier used to sign the client assertion is not "
                           "registered on application. [Reason - The key was not found., Thumbprint of key used by "
                           "client: '<thumbprint>']" + _T},
     "app", "CERTIFICATE_NOT_REGISTERED", "AADSTS700027"),
    ("AzureAD/microsoft-authentication-library-for-dotnet#4951",
     {"error": "invalid_client", "error_codes": [700024],
      "error_description": "AADSTS700024: Client assertion is not within its valid time range. Current time: "
                           "2024-10-02T22:05:03.6755165Z, assertion valid from 1970-01-01T00:00:00.0000000Z, expiry "
                           "time of assertion 2024-10-02T21:30:53.0000000Z." + _T},
     "app", "SERVICE_UNAVAILABLE", "AADSTS700024"),
    ("Worklytics/psoxy#74",
     {"error": "unauthorized_client",
      "error_description": "AADSTS7000112: Application '8b0c024c-7823-3774-2da8-a8d8b7ed331a'(worklytics-azuread-connector) is disabled."},
     "app", "APP_DISABLED", "AADSTS7000112"),
    ("rootinc/laravel-azure-middleware#51",
     {"error": "invalid_resource", "error_codes": [500011],
      "error_description": "AADSTS500011: The resource principal named {id} was not found in the tenant named {id} This "
                           "can happen if the application has not been installed by the administrator of the tenant or "
                           "consented to by any user in the tenant." + _T},
     "app", "TENANT_NOT_FOUND", "AADSTS500011"),
    ("nais/device#45",
     {"error": "invalid_grant", "error_codes": [70043], "suberror": "token_expired",
      "error_description": "AADSTS70043: The refresh token has expired or is invalid due to sign-in frequency checks by "
                           "conditional access. The token was issued on 2020-06-03T07:09:26.9675714Z and the maximum "
                           "allowed lifetime for this request is 82800." + _T},
     "modern", "SERVICE_UNAVAILABLE", "AADSTS70043"),
    ("blobfile/blobfile#93",
     {"error": "invalid_grant",
      "error_description": "AADSTS700082: The refresh token has expired due to inactivity."},
     "modern", "SERVICE_UNAVAILABLE", "AADSTS700082"),
    ("microsoft/azuredatastudio#22853 (50173 as the PR quotes it)",
     {"error": "invalid_grant", "error_codes": [50173],
      "error_description": "AADSTS50173: The provided grant has expired due to it being revoked, and a fresh auth token "
                           "is needed." + _T},
     "modern", "SERVICE_UNAVAILABLE", "AADSTS50173"),
]


@pytest.mark.parametrize("source, body, path, message_id, code", REAL_BODIES, ids=[r[0] for r in REAL_BODIES])
def test_real_error_bodies(source, body, path, message_id, code):
    from shared.adapters.entra_sign_in import entra_error_fields

    fields = entra_error_fields(body)
    assert fields["error_code"] == code, source
    diagnosis = classify(Signal(fields["error_code"], 400, path, ca_challenge=fields["ca_challenge"]),
                         params={**PARAMS, "description": fields["error_description"]})
    assert diagnosis.message_id == message_id, source
    assert f"{code}: {code}" not in (diagnosis.cause or "") and "Trace ID" not in (diagnosis.cause or "")


@pytest.mark.parametrize("claims, named", [
    # Learn "Developer guidance for Conditional Access" (MicrosoftDocs, the older form): polids
    ('{"access_token":{"polids":{"essential":true,"Values":["<GUID>"]}}}', True),
    # the form the simulator and current tenants send: capolids
    ('{"access_token":{"capolids":{"essential":true,"values":["7c1ee8ab-aa01-4b3e-9ce5-0e1e1b8b2a11"]}}}', True),
    ('{"access_token":{"nbf":{"essential":true,"value":"1602528342"}}}', False),   # a CAE claims challenge
    (None, False),
])
def test_claims_forms_that_name_a_policy(claims, named):
    from shared.adapters.entra_sign_in import entra_error_fields

    body = {"error": "invalid_grant", "error_codes": [50076], "claims": claims,
            "error_description": "AADSTS50076: Due to a configuration change made by your administrator, or because "
                                 "you moved to a new location, you must use multi-factor authentication to access "
                                 "'00000003-0000-0000-c000-000000000000'." + _T}
    fields = entra_error_fields(body)
    assert fields["ca_challenge"] is named
    variant = classify(Signal("AADSTS50076", 400, "modern", ca_challenge=fields["ca_challenge"]), params=PARAMS).variant
    assert variant == ("conditionalAccess" if named else "perUser")
