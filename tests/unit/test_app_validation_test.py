"""The app profile's Validation Test over the scripted probe: every message of path ``app``, the
rotation overlap, SharePoint URL discovery, the expiry warning on a passed test, and what it costs
(upstream requests and Key Vault sign operations)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from shared.contract.validation import outcome_json
from shared.domain.certificates import CertificateInfo
from shared.domain.probes import AccountProbe
from shared.domain.validation import AppValidationForm
from shared.domain.validation_test import run_validation_test
from tests.fakes_validation import CONTOSO_SHAREPOINT, FakeAccountProbe, failed, ok

TENANT = "11111111-1111-4111-8111-111111111111"
CLIENT = "c0ffee00-0000-4000-8000-000000000001"
RANGES = ("203.0.113.0/28", "198.51.100.16/29")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
CONSENT = f"https://login.microsoftonline.com/{TENANT}/adminconsent?client_id={CLIENT}"
TOKEN = "opaque-token-or-cookies"  # what the fake's grants hold


def cert(name="current", days_left=365) -> CertificateInfo:
    return CertificateInfo(name, "v1", (name[:2].encode().hex() * 10)[:40], "x5t-" + name, NOW - timedelta(days=30),
                           NOW + timedelta(days=days_left), f"https://vault.vault.azure.net/keys/{name}/v1", b"der")


class Signer:
    """Key Vault's sign operation, counted."""

    def __init__(self):
        self.keys: list[str] = []

    def __call__(self, key_id: str, digest: bytes) -> bytes:
        assert len(digest) == 32
        self.keys.append(key_id)
        return b"signature"


def form(**kw) -> AppValidationForm:
    values = dict(tenant_id=TENANT, client_id=CLIENT, certificate=cert(), sign=Signer(), admin_consent_url=CONSENT,
                  sharepoint_url=CONTOSO_SHAREPOINT)
    values.update(kw)
    return AppValidationForm(**values)


class Clock:
    def __init__(self):
        self.t, self.slept = 100.0, []

    def timer(self):
        return self.t

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.t += seconds


def run(f, probe, **kw):
    clock = kw.pop("clock", None) or Clock()
    kw.setdefault("sleep", clock.sleep)
    return run_validation_test(f, probe=probe, reserved_ip_ranges=RANGES, correlation_id="cid-1",
                               clock=lambda: NOW, timer=clock.timer, **kw)


def checks(outcome) -> dict[str, str]:
    return {c.name: c.status for c in outcome.checks}


# --- passed ------------------------------------------------------------------------------------

def test_the_fake_is_the_port():
    assert isinstance(FakeAccountProbe(), AccountProbe)


def test_passes_with_three_requests_and_two_signatures_when_the_url_is_known():
    f, probe = form(), FakeAccountProbe()
    outcome = run(f, probe)
    assert (outcome.status, outcome.message_id, outcome.user_role) == ("passed", None, None)
    assert probe.methods() == ["graphToken", "sharePointToken", "check_sharepoint_app_only"]
    assert outcome.evidence.upstream_requests == 3 and outcome.evidence.sign_in_path == "app"
    assert f.sign.keys == [f.certificate.key_id] * 2  # the certificate's Key Vault key, one sign per token
    assert probe.calls[0].args[3] == "https://graph.microsoft.com/.default"
    assert probe.calls[1].args[3] == "https://contoso.sharepoint.com/.default"
    assert probe.calls[2].args[0] == CONTOSO_SHAREPOINT
    assert checks(outcome) == {"signIn": "passed", "permissions": "passed", "sharePoint": "passed",
                               "certificate": "passed"}
    assert outcome.granted_permissions == {"graph": ("Sites.FullControl.All", "User.Read.All"),
                                           "sharepoint": ("Sites.FullControl.All",)}
    assert outcome.missing_permissions == {"graph": (), "sharepoint": ()}
    assert outcome.certificate.thumbprint == f.certificate.thumbprint and outcome.certificate.days_left == 365
    assert outcome.sharepoint_url == CONTOSO_SHAREPOINT and outcome.certificate_rotated is True


def test_discovers_the_sharepoint_url_with_one_more_request():
    probe = FakeAccountProbe().answer("sharepoint_root", ok("sharepoint_root", url="https://fabrikam.sharepoint.com"))
    outcome = run(form(sharepoint_url=None), probe)
    assert outcome.passed and outcome.sharepoint_url == "https://fabrikam.sharepoint.com"
    assert probe.methods() == ["graphToken", "sharepoint_root", "sharePointToken", "check_sharepoint_app_only"]
    assert probe.calls[2].args[3] == "https://fabrikam.sharepoint.com/.default"
    assert outcome.evidence.upstream_requests == 4


def test_a_known_url_keeps_no_trailing_slash():
    probe = FakeAccountProbe()
    outcome = run(form(sharepoint_url="https://contoso.sharepoint.com/"), probe)
    assert outcome.passed and outcome.sharepoint_url == CONTOSO_SHAREPOINT
    assert probe.calls[1].args[3] == "https://contoso.sharepoint.com/.default"


def test_a_certificate_that_expires_soon_passes_with_the_warning():
    outcome = run(form(certificate=cert(days_left=12)), FakeAccountProbe())
    assert (outcome.status, outcome.message_id) == ("passed", "CERTIFICATE_EXPIRING")
    assert outcome.passed and outcome.solutions and "expires soon" in outcome.message
    assert "notAfter 2026-06-13T12:00:00Z" in outcome.cause and "12 days left" in outcome.cause
    assert checks(outcome)["certificate"] == "passed" and outcome.certificate.days_left == 12
    assert outcome_json(outcome)["status"] == "passed"


# --- the certificate ---------------------------------------------------------------------------

def test_an_expired_certificate_fails_before_any_request():
    f, probe = form(certificate=cert(days_left=-3)), FakeAccountProbe()
    outcome = run(f, probe)
    assert (outcome.status, outcome.message_id) == ("failed", "CERTIFICATE_EXPIRED")
    assert "notAfter 2026-05-29T12:00:00Z" in outcome.cause
    assert probe.calls == [] and f.sign.keys == [] and outcome.evidence.upstream_requests == 0
    assert checks(outcome) == {"signIn": "skipped", "permissions": "skipped", "sharePoint": "skipped",
                               "certificate": "failed"}
    assert outcome.certificate.days_left == -3 and outcome.granted_permissions is None


def test_an_unregistered_certificate_is_700027():
    probe = FakeAccountProbe().answer("graphToken", failed("graphToken", "AADSTS700027", status=401))
    outcome = run(form(), probe)
    assert outcome.message_id == "CERTIFICATE_NOT_REGISTERED" and outcome.evidence.aadsts_code == "AADSTS700027"
    assert checks(outcome)["signIn"] == "failed" and checks(outcome)["certificate"] == "failed"
    assert probe.methods() == ["graphToken"] and outcome.certificate_rotated is None


def test_rotation_overlap_the_previous_certificate_signs_when_the_new_one_is_not_registered():
    current, previous = cert("current"), cert("previous", days_left=20)
    f = form(certificate=current, previous_certificate=previous)
    probe = FakeAccountProbe().answer("graphToken", failed("graphToken", "AADSTS700027", status=401))
    outcome = run(f, probe)
    assert outcome.status == "passed" and outcome.certificate_rotated is False
    assert f.sign.keys == [current.key_id, previous.key_id, previous.key_id]
    assert outcome.certificate.thumbprint == previous.thumbprint
    assert outcome.evidence.upstream_requests == 4
    assert outcome.message_id == "CERTIFICATE_EXPIRING"  # the certificate that signed expires in 20 days
    assert "previous certificate" in next(c.detail for c in outcome.checks if c.name == "signIn")


def test_rotation_overlap_when_the_current_certificate_is_registered():
    f = form(previous_certificate=cert("previous"))
    outcome = run(f, FakeAccountProbe())
    assert outcome.passed and outcome.certificate_rotated is True and f.sign.keys == [f.certificate.key_id] * 2


@pytest.mark.parametrize("previous", [None, cert("previous", days_left=-1)])
def test_no_overlap_without_a_valid_previous_certificate(previous):
    f = form(previous_certificate=previous)
    probe = FakeAccountProbe().answer("graphToken", failed("graphToken", "AADSTS700027", status=401))
    assert run(f, probe).message_id == "CERTIFICATE_NOT_REGISTERED" and len(f.sign.keys) == 1


def test_both_certificates_unregistered():
    f = form(previous_certificate=cert("previous"))
    probe = FakeAccountProbe().answer("graphToken", *[failed("graphToken", "AADSTS700027", status=401)] * 2)
    outcome = run(f, probe)
    assert outcome.message_id == "CERTIFICATE_NOT_REGISTERED" and outcome.evidence.upstream_requests == 2
    assert outcome.certificate.thumbprint == f.certificate.thumbprint


# --- Entra's answers through the catalog, path app --------------------------------------------

@pytest.mark.parametrize("code, step, message_id, cause_has", [
    ("AADSTS700016", "graphToken", "APP_NOT_FOUND", "found no application"),
    ("AADSTS65001", "graphToken", "APP_CONSENT_MISSING", "consented"),
    ("AADSTS7000112", "graphToken", "APP_DISABLED", "disabled"),
    ("AADSTS53003", "graphToken", "ACCESS_POLICY_BLOCKED", "203.0.113.0/28"),
    ("AADSTS7000112", "sharePointToken", "APP_DISABLED", "disabled"),
    ("AADSTS500011", "sharePointToken", "TENANT_NOT_FOUND", ""),
])
def test_token_errors(code, step, message_id, cause_has):
    probe = FakeAccountProbe().answer(step, failed(step, code))
    outcome = run(form(), probe)
    assert (outcome.status, outcome.message_id) == ("failed", message_id)
    assert cause_has in outcome.cause and outcome.evidence.step == step
    assert checks(outcome)["signIn"] == "failed" and outcome.user_role is None
    if message_id == "APP_CONSENT_MISSING":
        assert any(CONSENT in s for s in outcome.solutions)
    if step == "sharePointToken":  # the Graph token was obtained: its roles are in the outcome
        assert outcome.granted_permissions["graph"] == ("Sites.FullControl.All", "User.Read.All")


def test_workload_identity_policy_cause():
    probe = FakeAccountProbe().answer("graphToken", failed("graphToken", "AADSTS53003", ca_challenge=True))
    outcome = run(form(), probe)
    assert outcome.cause.startswith("A Conditional Access policy for workload identities blocked")


# --- permissions -------------------------------------------------------------------------------

def test_tokens_without_roles_are_consent_missing_with_the_link():
    probe = (FakeAccountProbe().answer("graphToken", ok("graphToken", role_names=()))
             .answer("sharePointToken", ok("sharePointToken", role_names=())))
    outcome = run(form(), probe)
    assert outcome.message_id == "APP_CONSENT_MISSING"
    assert any(CONSENT in s for s in outcome.solutions)
    assert "Microsoft Graph: Sites.FullControl.All, User.Read.All; SharePoint: Sites.FullControl.All" in outcome.cause
    assert outcome.granted_permissions == {"graph": (), "sharepoint": ()}
    assert outcome.missing_permissions == {"graph": ("Sites.FullControl.All", "User.Read.All"),
                                           "sharepoint": ("Sites.FullControl.All",)}
    assert probe.methods() == ["graphToken", "sharePointToken"]  # no app-only probe
    assert checks(outcome) == {"signIn": "passed", "permissions": "failed", "sharePoint": "skipped",
                               "certificate": "passed"}


def test_missing_permissions_are_named_per_resource():
    probe = FakeAccountProbe().answer("graphToken", ok("graphToken", role_names=("Sites.FullControl.All",)))
    outcome = run(form(), probe)
    assert outcome.message_id == "APP_PERMISSION_MISSING"
    assert outcome.missing_permissions == {"graph": ("User.Read.All",), "sharepoint": ()}
    assert "Microsoft Graph: User.Read.All" in outcome.cause and "SharePoint:" not in outcome.cause
    assert any("Microsoft Graph: User.Read.All" in s and CONSENT in s for s in outcome.solutions)
    assert outcome.evidence.upstream_requests == 2


def test_the_governance_workload_needs_other_graph_permissions():
    outcome = run(form(workload="governance"), FakeAccountProbe())
    assert outcome.message_id == "APP_PERMISSION_MISSING"
    # Sites.FullControl.All covers Sites.Read.All (the manifest's "implies"); Group.Read.All is missing.
    assert outcome.missing_permissions["graph"] == ("Group.Read.All",)


def test_discovery_403_without_any_role_is_consent_missing():
    probe = (FakeAccountProbe().answer("graphToken", ok("graphToken", role_names=()))
             .answer("sharepoint_root", failed("sharepoint_root", "GRAPH_FORBIDDEN", status=403)))
    outcome = run(form(sharepoint_url=None), probe)
    assert outcome.message_id == "APP_CONSENT_MISSING" and any(CONSENT in s for s in outcome.solutions)
    assert probe.methods() == ["graphToken", "sharepoint_root"] and outcome.sharepoint_url is None


def test_discovery_403_without_a_sites_role_is_permission_missing():
    probe = (FakeAccountProbe().answer("graphToken", ok("graphToken", role_names=("User.Read.All",)))
             .answer("sharepoint_root", failed("sharepoint_root", "GRAPH_FORBIDDEN", status=403,
                                               error_description="accessDenied: Access denied")))
    outcome = run(form(sharepoint_url=None), probe)
    assert outcome.message_id == "APP_PERMISSION_MISSING"
    assert outcome.missing_permissions == {"graph": ("Sites.FullControl.All",), "sharepoint": ()}
    assert "sites/root" in outcome.cause and "Microsoft Graph: Sites.FullControl.All" in outcome.cause
    assert checks(outcome)["permissions"] == "failed" and outcome.evidence.step == "sitesRoot"


def test_discovery_throttled_for_long_is_throttled():
    probe = FakeAccountProbe().answer("sharepoint_root", failed("sharepoint_root", None, status=429, retry_after=40))
    outcome = run(form(sharepoint_url=None), probe)
    assert (outcome.status, outcome.message_id, outcome.retry_after_seconds) == ("error", "THROTTLED", 40)
    assert checks(outcome)["sharePoint"] == "failed"


# --- SharePoint app-only REST ------------------------------------------------------------------

def test_an_app_only_token_sharepoint_refuses():
    probe = FakeAccountProbe().answer("check_sharepoint_app_only", failed(
        "check_sharepoint_app_only", "SP_APP_ONLY_REFUSED", status=401, error_description="Unsupported app only token."))
    outcome = run(form(), probe)
    assert outcome.message_id == "APP_ONLY_TOKEN_REFUSED" and "Unsupported app only token." in outcome.cause
    assert checks(outcome) == {"signIn": "passed", "permissions": "passed", "sharePoint": "failed",
                               "certificate": "passed"}


def test_app_only_403_is_permission_missing():
    probe = FakeAccountProbe().answer("check_sharepoint_app_only", failed(
        "check_sharepoint_app_only", "SP_FORBIDDEN", status=403, error_description="Access denied."))
    outcome = run(form(), probe)
    assert outcome.message_id == "APP_PERMISSION_MISSING"
    assert "https://contoso.sharepoint.com/_api/web" in outcome.cause
    assert checks(outcome)["permissions"] == "failed" and checks(outcome)["sharePoint"] == "failed"


def test_a_short_retry_after_is_waited_for_once():
    clock = Clock()
    probe = FakeAccountProbe().answer("check_sharepoint_app_only",
                                      failed("check_sharepoint_app_only", None, status=503, retry_after=1))
    outcome = run(form(), probe, clock=clock)
    assert outcome.passed and clock.slept == [1] and outcome.evidence.upstream_requests == 4


def test_a_token_step_throttled_is_repeated_with_a_new_signature():
    f = form()
    probe = FakeAccountProbe().answer("sharePointToken", failed("sharePointToken", None, status=429, retry_after=1))
    outcome = run(f, probe)
    assert outcome.passed and len(f.sign.keys) == 3


def test_unavailable_sharepoint_is_service_unavailable():
    probe = FakeAccountProbe().answer("check_sharepoint_app_only",
                                      failed("check_sharepoint_app_only", None, status=503, retry_after=120))
    outcome = run(form(), probe)
    assert (outcome.status, outcome.message_id, outcome.retry_after_seconds) == ("error", "SERVICE_UNAVAILABLE", 120)


# --- input, shape, secrets ---------------------------------------------------------------------

@pytest.mark.parametrize("changes, field", [
    ({"client_id": "not-a-guid"}, "clientId"), ({"tenant_id": "no tenant"}, "tenantId"),
    ({"workload": "mining"}, "workload"), ({"sharepoint_url": "http://contoso.sharepoint.com"}, "sharePointUrl"),
    ({"sharepoint_url": "https://contoso.sharepoint.com/sites/x"}, "sharePointUrl"),
])
def test_input_problems_send_nothing(changes, field):
    f, probe = form(**changes), FakeAccountProbe()
    outcome = run(f, probe)
    assert outcome.message_id == "INVALID_INPUT" and field in outcome.cause
    assert probe.calls == [] and f.sign.keys == [] and checks(outcome)["input"] == "failed"


def test_wire_shape_and_no_token_anywhere():
    outcome = run(form(certificate=cert(days_left=12)), FakeAccountProbe())
    data = outcome_json(outcome)
    assert data["grantedPermissions"] == {"graph": ["Sites.FullControl.All", "User.Read.All"],
                                          "sharepoint": ["Sites.FullControl.All"]}
    assert data["missingPermissions"] == {"graph": [], "sharepoint": []}
    assert data["certificate"]["daysLeft"] == 12 and data["certificate"]["notAfter"] == "2026-06-13T12:00:00Z"
    assert data["sharePointUrl"] == CONTOSO_SHAREPOINT and data["certificateRotated"] is True
    assert data["evidence"]["signInPath"] == "app" and data["messageId"] == "CERTIFICATE_EXPIRING"
    assert TOKEN not in json.dumps(data) and "signature" not in json.dumps(data)
    assert "sign=" not in repr(form()) and "Signer" not in repr(form())


def test_the_other_paths_outcomes_have_no_app_fields():
    from shared.domain.profile import Password
    from shared.domain.validation import ValidationForm

    data = outcome_json(run(ValidationForm(TENANT, "admin@contoso.onmicrosoft.com", Password("x" * 12)),
                            FakeAccountProbe()))
    assert not {"grantedPermissions", "missingPermissions", "certificate", "sharePointUrl",
                "certificateRotated"} & set(data)


def test_key_vault_unavailable_propagates():
    from shared.domain.errors import DependencyUnavailable

    def down(key_id, digest):
        raise DependencyUnavailable("Key Vault")

    class Probe(FakeAccountProbe):
        def app_token(self, tenant_id, client_id, certificate, sign, **kw):
            sign(certificate.key_id, bytes(32))
            raise AssertionError("unreachable")

    with pytest.raises(DependencyUnavailable):
        run(form(sign=down), Probe())


def test_sites_selected_passes_with_its_limitation_in_the_outcome():
    """Sites.Selected stands in for Sites.FullControl.All on SharePoint; the app-only probe decides
    whether it reaches the site, and a passed outcome names the limitation."""
    probe = FakeAccountProbe().answer("sharePointToken", ok("sharePointToken", role_names=("Sites.Selected",)))
    outcome = run(form(), probe)
    assert outcome.status == "passed" and outcome.limitations == ("APP_SITES_SELECTED",)
    refused = FakeAccountProbe().answer("sharePointToken", ok("sharePointToken", role_names=("Sites.Selected",))) \
        .answer("check_sharepoint_app_only", failed("check_sharepoint_app_only", "SP_FORBIDDEN", status=403))
    assert run(form(), refused).message_id == "APP_PERMISSION_MISSING"
