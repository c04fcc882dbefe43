"""The Validation Test through the public HTTP API against the simulator's demo tenants.

Every troubleshooting message is produced by the tenant condition that causes it, and applying the
spec's solution in the simulator (or in the form) turns it into ``passed``.
"""
import uuid

import pytest

from tests.demo import ADATUM, CONTOSO, FABRIKAM, NORTHWIND, TAILSPIN
from tests.demo import APP_PASSWORD as APP_PW
from tests.demo import PASSWORD as PW
RESERVED = "203.0.113.0/28"


def form(user, password=PW, *, mfa=False, url=None, domain="contoso"):
    body = {"username": f"{user}@{domain}.onmicrosoft.com", "password": password, "mfaEnabled": mfa}
    if mfa or url:
        body["adminCenter"] = {"mode": "custom", "url": url or f"https://{domain}-admin.sharepoint.com"}
    return body


def validation_test(api, tenant, body):
    r = api.post(f"/api/tenants/{tenant}/validation-tests", json=body)
    assert r.status_code == 200, r.text
    return r.json()


# (case id, tenant, form, expected message id, solution: (sim action, form after) or None)
def _patch_user(upn, patch):
    return lambda sim: sim.control.patch_user(upn, patch)


def _patch_policy(name, patch):
    return lambda sim: sim.control.patch_policy(CONTOSO, name, patch)


CASES = [
    ("insufficient-role", CONTOSO, form("reader"), "INSUFFICIENT_ROLE",
     _patch_user("reader@contoso.onmicrosoft.com", {"roles": ["SharePoint Administrator"]}), None),
    ("per-user-mfa:tick-mfa-and-app-password", CONTOSO, form("mfa"), "MFA_ENABLED",
     None, form("mfa", APP_PW, mfa=True)),
    ("per-user-mfa:disable-mfa", CONTOSO, form("mfa"), "MFA_ENABLED",
     _patch_user("mfa@contoso.onmicrosoft.com", {"perUserMfa": "disabled"}), None),
    ("ca-mfa:exclude-user", CONTOSO, form("camfa"), "MFA_ENABLED",
     _patch_policy("Require MFA for camfa", {"users": {"exclude": ["camfa@contoso.onmicrosoft.com"]}}), None),
    ("location-policy:exclude-user", CONTOSO, form("blocked"), "ACCESS_POLICY_BLOCKED",
     _patch_policy("Block sign-in outside trusted locations", {"users": {"exclude": ["blocked@contoso.onmicrosoft.com"]}}), None),
    ("location-policy:exclude-reserved-ips", CONTOSO, form("blocked"), "ACCESS_POLICY_BLOCKED",
     _patch_policy("Block sign-in outside trusted locations", {"locations": {"excludedRanges": [RESERVED]}}), None),
    ("location-policy:disable-policy", CONTOSO, form("blocked"), "ACCESS_POLICY_BLOCKED",
     _patch_policy("Block sign-in outside trusted locations", {"state": "off"}), None),
    ("device-policy", CONTOSO, form("device"), "ACCESS_POLICY_BLOCKED",
     _patch_policy("Require a compliant device", {"users": {"exclude": ["device@contoso.onmicrosoft.com"]}}), None),
    ("locked", CONTOSO, form("locked"), "ACCOUNT_LOCKED", _patch_user("locked@contoso.onmicrosoft.com", {"state": "active"}), None),
    ("expired", CONTOSO, form("expired"), "PASSWORD_EXPIRED", _patch_user("expired@contoso.onmicrosoft.com", {"state": "active"}), None),
    ("disabled", CONTOSO, form("disabled"), "ACCOUNT_DISABLED", _patch_user("disabled@contoso.onmicrosoft.com", {"state": "active"}), None),
    ("wrong-password:fix-password", CONTOSO, form("admin", "Wrong-Passw0rd!"), "CHECK_MFA_OR_APP_PASSWORD",
     None, form("admin")),
    ("wrong-app-password:fix", CONTOSO, form("mfa", "aaaabbbbccccdddd", mfa=True), "INVALID_APP_PASSWORD",
     None, form("mfa", APP_PW, mfa=True)),
    ("wrong-admin-url:fix", CONTOSO, form("mfa", APP_PW, mfa=True, url="https://wrong-admin.sharepoint.com"),
     "ADMIN_CENTER_UNREACHABLE", None, form("mfa", APP_PW, mfa=True)),
    ("legacy-apps-blocked:re-enable", NORTHWIND, form("mfa", APP_PW, mfa=True, domain="northwind"), "LEGACY_AUTH_BLOCKED",
     lambda sim: sim.control.patch_tenant(NORTHWIND, {"legacyAuth": {"blockLegacyApps": False}}), None),
    ("idcrl-blocked-by-default:re-enable-before-retirement", TAILSPIN, form("mfa", APP_PW, mfa=True, domain="tailspin"),
     "LEGACY_AUTH_BLOCKED", lambda sim: sim.control.patch_tenant(TAILSPIN, {"legacyAuth": {"idcrlReEnabled": True}}), None),
]


# The setting can bring the legacy sign-in back only before May 1, 2026: these cases run on a day
# before it (the date SharePoint's answers carry, set in the simulator's scenario).
BEFORE_RETIREMENT = {"legacy-apps-blocked:re-enable", "idcrl-blocked-by-default:re-enable-before-retirement"}


@pytest.mark.parametrize("case, tenant, body, message_id, fix, fixed_form", CASES, ids=[c[0] for c in CASES])
def test_message_and_its_solution(api, sim, case, tenant, body, message_id, fix, fixed_form):
    if case in BEFORE_RETIREMENT:
        sim.control.patch_scenario({"settings": {"date": "2026-04-15"}})
    before = validation_test(api, tenant, body)
    assert before["status"] == "failed", before
    if message_id:
        assert before["messageId"] == message_id, before
    assert before["solutions"], before
    if fix:
        fix(sim)
    after = validation_test(api, tenant, fixed_form or body)
    assert after["status"] == "passed" and after["messageId"] is None, after


def test_roles_and_mfa_blank_role(api):
    assert validation_test(api, CONTOSO, form("admin"))["userRole"] == "Global Administrator"
    assert validation_test(api, CONTOSO, form("spadmin"))["userRole"] == "SharePoint Administrator"
    mfa = validation_test(api, CONTOSO, form("mfa", APP_PW, mfa=True))
    assert mfa["status"] == "passed" and mfa["userRole"] is None and "blank" in mfa["userRoleNote"]


def test_message_1_points_at_the_reserved_addresses(api):
    out = validation_test(api, CONTOSO, form("blocked"))
    assert out["message"] == "Your organization has set access policies that block the validation."
    assert any("reserved IP addresses" in s for s in out["solutions"])
    assert RESERVED in (out["cause"] or "")


def test_conditions_without_a_tenant_side_fix(api):
    assert validation_test(api, CONTOSO, form(f"nobody{uuid.uuid4().hex[:6]}"))["messageId"] == "USER_NOT_FOUND"
    assert validation_test(api, str(uuid.uuid4()), form("admin"))["messageId"] == "TENANT_NOT_FOUND"
    retired = validation_test(api, FABRIKAM, form("mfa", APP_PW, mfa=True, domain="fabrikam"))
    assert retired["messageId"] == "LEGACY_AUTH_RETIRED" and "NO_GHOST_GUEST_USERS_RULE" in retired["limitations"]
    assert "2026" in retired["cause"] and "Sites.FullControl.All" in " ".join(retired["solutions"])
    security_defaults = validation_test(api, ADATUM, form("user", PW, mfa=True, domain="adatum"))
    assert security_defaults["messageId"] == "ACCESS_POLICY_BLOCKED", security_defaults


def test_app_password_with_mfa_off_says_so(api):
    out = validation_test(api, CONTOSO, form("mfa", APP_PW))
    assert out["messageId"] in ("CHECK_MFA_OR_APP_PASSWORD", "MFA_ENABLED")
    assert "app password" in ((out["cause"] or "") + " ".join(out["solutions"])).lower()


def test_throttling_and_outage_are_errors_with_retry_after(api, sim):
    sim.control.add_fault("entra.token", status=429, retryAfter=30, count=1)
    throttled = validation_test(api, CONTOSO, form("admin"))
    assert throttled["status"] == "error" and throttled["messageId"] == "THROTTLED"
    assert throttled["evidence"]["retryAfterSeconds"] == 30
    sim.control.add_fault("graph", status=503, retryAfter=30, count=1)
    down = validation_test(api, CONTOSO, form("admin"))
    assert down["status"] == "error" and down["messageId"] == "SERVICE_UNAVAILABLE"
    assert validation_test(api, CONTOSO, form("admin"))["status"] == "passed"


def test_short_retry_after_is_waited_for_once(api, sim):
    sim.control.add_fault("entra.token", status=429, retryAfter=1, count=1)
    assert validation_test(api, CONTOSO, form("admin"))["status"] == "passed"


def test_message_3_variants_per_user_and_conditional_access(api):
    per_user = validation_test(api, CONTOSO, form("mfa"))
    conditional = validation_test(api, CONTOSO, form("camfa"))
    assert per_user["messageId"] == conditional["messageId"] == "MFA_ENABLED"
    assert per_user["message"] == conditional["message"] == "This account has multi-factor authentication enabled."
    assert "multi-factor authentication interface" in " ".join(per_user["solutions"])
    assert "conditional access" in " ".join(conditional["solutions"]).lower()
    assert per_user["solutions"] != conditional["solutions"]


@pytest.mark.parametrize("day, message_id", [(None, "LEGACY_AUTH_RETIRED"),          # today, after May 1, 2026
                                             ("2026-04-15", "LEGACY_AUTH_BLOCKED")])  # the same tenant before it
def test_retirement_by_timeline_from_the_real_symptom(api, sim, day, message_id):
    """Fabrikam's STS issues the token and wsignin1.0 refuses without cookies (the real symptom); the
    date of SharePoint's answer decides between retired and blocked."""
    if day:
        sim.control.patch_scenario({"settings": {"date": day}})
    out = validation_test(api, FABRIKAM, form("mfa", APP_PW, mfa=True, domain="fabrikam"))
    assert out["messageId"] == message_id, out
    assert out["evidence"]["step"] == "wsignin" and out["evidence"]["httpStatus"] == 403
    assert (day or "2026") in out["cause"]
    texts = " ".join([out["message"], out["cause"], *out["solutions"]])
    if message_id == "LEGACY_AUTH_RETIRED":
        assert "don't use modern authentication" not in texts and "don’t use modern authentication" not in texts
    else:
        assert "April 30, 2026" in texts
    contoso = validation_test(api, CONTOSO, form("mfa", APP_PW, mfa=True, url="https://contoso-admin.sharepoint.com"))
    assert contoso["status"] == "passed", contoso
