"""App profiles end to end on the local stack (local Functions host, Azurite, the simulator's Entra ID,
Graph, SharePoint and Key Vault): the demo certificate, consent, every app message id reached by
changing the simulator and fixed again, migration of an MFA profile, the overlap of a rotation, and
the Key Vault log: sign operations, never a key export."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.apps import DEMO_PFX_PASSWORD, demo_pfx
from tests.fakes import make_certificate
from tests.fixtures.app import unique

APP1 = "c0ffee00-0000-4000-8000-000000000001"  # "M365 Backup (demo)": consented
APP2 = "c0ffee00-0000-4000-8000-000000000002"  # "M365 Backup (no consent)"
PFX_CANARY = "Canary-Pfx-Password-4e1!"
GRANTED = {"graph": ["Sites.FullControl.All", "User.Read.All"], "sharepoint": ["Sites.FullControl.All"]}




def own_pfx(days: int, *, starts: datetime | None = None, password: str = PFX_CANARY) -> str:
    start = starts or datetime.now(timezone.utc) - timedelta(days=1)
    key, cert = make_certificate("CN=e2e", start, timedelta(days=days))
    return base64.b64encode(pkcs12.serialize_key_and_certificates(
        b"e2e", key, cert, None, serialization.BestAvailableEncryption(password.encode()))).decode()


class Profiles:
    def __init__(self, api, tenant):
        self.api, self.tenant = api, tenant
        self.base = f"/api/tenants/{tenant}/profiles"

    def create_app(self, client_id=APP1, **certificate) -> dict:
        r = self.api.post(self.base, json={"kind": "app", "name": unique("app"), "clientId": client_id,
                                           "certificate": certificate or {"generate": True}})
        assert r.status_code == 201, r.text
        return r.json()

    def validate(self, profile) -> dict:
        r = self.api.post(f"{self.base}/{profile['id']}/validate")
        assert r.status_code == 200, r.text
        return r.json()

    def get(self, profile) -> dict:
        return self.api.get(f"{self.base}/{profile['id']}").json()

    def certificate(self, profile) -> str:
        r = self.api.get(f"{self.base}/{profile['id']}/certificate")
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/x-pem-file")
        return r.text


@pytest.fixture
def profiles(api, tenant):
    return Profiles(api, tenant)


def keyvault_ops(sim) -> dict[str, int]:
    return {k: v.get("requests", 0) for k, v in sim.control.counters().items() if k.startswith("keyvault.")}


def keyvault_ops_of(sim, profiles: "Profiles", profile) -> dict[str, int]:
    """The Key Vault operations on ``profile``'s own certificate, key and secret (an explanation's
    look of another test may sign with its tenant's diagnosis app at any time on the shared
    simulator), and the private-key reads of any secret."""
    from shared.names import profile_certificate_name

    name = profile_certificate_name(profiles.tenant.lower(), profile["id"])
    counters = sim.control.counters()
    ops = {k: v["byName"][name] for k, v in counters.items()
           if k.startswith("keyvault.") and v.get("byName", {}).get(name)}
    exported = counters.get("keyvault.secrets.getWithPrivateKey", {}).get("requests")
    return {**ops, **({"keyvault.secrets.getWithPrivateKey": exported} if exported else {})}


def signatures_by(sim, profiles: "Profiles", profile) -> int:
    return keyvault_ops_of(sim, profiles, profile).get("keyvault.keys.sign", 0)


def test_the_demo_certificate_passes_with_its_granted_permissions_and_key_vault_only_signs(
        profiles, sim, assert_schema, app_host, storage_dump):
    created = profiles.create_app(pfx=demo_pfx(sim), password=DEMO_PFX_PASSWORD)
    assert created["certificate"]["thumbprint"] == sim.control.generated_certificate()["thumbprint"].lower()
    sim.control.clear_counters()
    first = profiles.validate(created)
    assert_schema("ValidationResult", first)
    assert first["status"] == "passed" and first["messageId"] is None, first
    assert first["grantedPermissions"] == GRANTED and first["missingPermissions"] == {"graph": [], "sharepoint": []}
    assert first["sharePointUrl"] == "https://contoso.sharepoint.com" and first["userRole"] is None
    # The minimum: 2 tokens + the app-only probe; once per profile the SharePoint URL from Graph, and
    # once per process and tenant (this test's own tenant id) the tenant's OpenID configuration.
    assert first["evidence"]["upstreamRequests"] == 1 + 1 + 3
    ops = keyvault_ops_of(sim, profiles, created)
    assert ops.get("keyvault.keys.sign") == 2 and ops.get("keyvault.keys.get") == 1, ops
    assert not any(k.startswith("keyvault.secrets") for k in ops), ops  # no secret read: no key left the vault
    from devtools.bench.stack import worker_processes

    for _ in range(worker_processes({}) - 1):  # the host's other worker processes have caches of their own
        profiles.validate(created)
    sim.control.clear_counters()
    second = profiles.validate(created)
    assert second["status"] == "passed" and second["evidence"]["upstreamRequests"] == 3
    # Steady state: two signatures and nothing else (the public key was read once, by the first).
    assert keyvault_ops_of(sim, profiles, created) == {"keyvault.keys.sign": 2}, keyvault_ops_of(sim, profiles, created)
    assert profiles.get(created)["sharePointUrl"] == "https://contoso.sharepoint.com"  # remembered


def test_no_consent_gives_the_consent_link_and_consent_in_the_simulator_fixes_it(profiles, sim):
    created = profiles.create_app(APP2, pfx=demo_pfx(sim), password=DEMO_PFX_PASSWORD)
    out = profiles.validate(created)
    assert out["status"] == "failed" and out["messageId"] == "APP_CONSENT_MISSING", out
    assert any(created["adminConsentUrl"] in s for s in out["solutions"]), out["solutions"]
    assert out["grantedPermissions"] == {"graph": [], "sharepoint": []}
    sim.control.patch_app(APP2, {"consented": True})
    assert profiles.validate(created)["status"] == "passed"


def test_a_generated_certificate_is_refused_until_it_is_registered(profiles, sim):
    created = profiles.create_app()
    out = profiles.validate(created)
    assert out["messageId"] == "CERTIFICATE_NOT_REGISTERED" and out["evidence"]["aadstsCode"] == "AADSTS700027"
    sim.control.add_app_certificate(APP1, pem=profiles.certificate(created))
    assert profiles.validate(created)["status"] == "passed"


@pytest.fixture
def registered(profiles, sim):
    created = profiles.create_app()
    sim.control.add_app_certificate(APP1, pem=profiles.certificate(created))
    assert profiles.validate(created)["status"] == "passed"
    return created


@pytest.mark.parametrize("change,message_id,undo", [
    ({"enabled": False}, "APP_DISABLED", {"enabled": True}),
    ({"permissions": {"graph": ["User.Read.All"]}}, "APP_PERMISSION_MISSING",
     {"permissions": {"graph": ["Sites.FullControl.All", "User.Read.All"]}}),
    ({"consented": False}, "APP_CONSENT_MISSING", {"consented": True}),
])
def test_each_app_registration_change_is_named_and_its_fix_passes(profiles, sim, registered, change, message_id,
                                                                  undo):
    sim.control.patch_app(APP1, change)
    out = profiles.validate(registered)
    assert out["messageId"] == message_id, out
    if message_id == "APP_PERMISSION_MISSING":
        assert out["missingPermissions"]["graph"] == ["Sites.FullControl.All"]
        assert any("Sites.FullControl.All" in s for s in [out["message"], out["cause"] or "", *out["solutions"]])
    sim.control.patch_app(APP1, undo)
    assert profiles.validate(registered)["status"] == "passed"


def test_an_unknown_client_id_is_app_not_found_and_the_right_one_passes(profiles, api, sim):
    created = profiles.create_app("0badc0de-0000-4000-8000-000000000000", pfx=demo_pfx(sim),
                                  password=DEMO_PFX_PASSWORD)
    out = profiles.validate(created)
    assert out["messageId"] == "APP_NOT_FOUND" and out["evidence"]["aadstsCode"] == "AADSTS700016"
    r = api.patch(f"{profiles.base}/{created['id']}", json={"clientId": APP1},
                  headers={"If-Match": profiles.get(created)["etag"]})
    assert r.status_code == 200 and r.json()["clientId"] == APP1
    assert profiles.validate(created)["status"] == "passed"


def test_a_workload_identity_policy_is_access_policy_blocked_with_its_own_solutions(profiles, sim, registered):
    name = "Block the backup app outside the office"
    sim.control.add_policy("contoso.onmicrosoft.com", {"name": name, "servicePrincipals": {"include": [APP1]},
                                                       "locations": {"trustedRanges": ["192.0.2.0/24"]},
                                                       "grant": "block"})
    out = profiles.validate(registered)
    assert out["messageId"] == "ACCESS_POLICY_BLOCKED" and out["evidence"]["aadstsCode"] == "AADSTS53003"
    assert "workload" in (out["cause"] or "").lower(), out["cause"]
    sim.control.patch_policy("contoso.onmicrosoft.com", name, {"state": "reportOnly"})
    assert profiles.validate(registered)["status"] == "passed"


def test_expiring_passes_with_a_warning_expired_fails_and_a_rotation_fixes_it(profiles, api, sim):
    expiring = profiles.create_app(pfx=own_pfx(11), password=PFX_CANARY)
    sim.control.add_app_certificate(APP1, pem=profiles.certificate(expiring))
    out = profiles.validate(expiring)
    assert out["status"] == "passed" and out["messageId"] == "CERTIFICATE_EXPIRING", out
    assert out["certificate"]["daysLeft"] <= 10
    expired = profiles.create_app(pfx=own_pfx(30, starts=datetime.now(timezone.utc) - timedelta(days=40)),
                                  password=PFX_CANARY)
    sim.control.clear_counters()
    out = profiles.validate(expired)
    assert out["status"] == "failed" and out["messageId"] == "CERTIFICATE_EXPIRED"
    assert out["evidence"]["upstreamRequests"] == 0 and signatures_by(sim, profiles, expired) == 0
    rotated = api.post(f"{profiles.base}/{expired['id']}/certificate")
    assert rotated.status_code == 200 and rotated.json()["certificate"]["daysLeft"] > 300
    sim.control.add_app_certificate(APP1, pem=profiles.certificate(expired))
    assert profiles.validate(expired)["status"] == "passed" and signatures_by(sim, profiles, expired) >= 1


def test_during_a_rotation_both_certificates_sign_in_until_the_new_one_has(profiles, api, sim, registered):
    old = registered["certificate"]["thumbprint"]
    rotated = api.post(f"{profiles.base}/{registered['id']}/certificate").json()
    assert rotated["previousCertificate"]["thumbprint"] == old
    out = profiles.validate(registered)  # the new one is not on the app yet: the old one signs
    assert out["status"] == "passed" and out["certificate"]["thumbprint"] == old
    assert profiles.get(registered)["previousCertificate"]["thumbprint"] == old
    sim.control.add_app_certificate(APP1, pem=profiles.certificate(registered))
    out = profiles.validate(registered)
    assert out["status"] == "passed" and out["certificate"]["thumbprint"] == rotated["certificate"]["thumbprint"]
    assert profiles.get(registered)["previousCertificate"] is None


def test_an_mfa_profile_migrates_and_its_password_is_deleted_only_after_the_first_pass(profiles, api, sim):
    mfa = api.post(profiles.base, json={
        "name": unique("mfa"), "mfaEnabled": True, "username": "mfa@contoso.onmicrosoft.com",
        "password": "qwertyuiopasdfgh",
        "adminCenter": {"mode": "custom", "url": "https://contoso-admin.sharepoint.com"}}).json()
    assert profiles.validate(mfa)["status"] == "passed"  # contoso: before the retirement (demo)
    r = api.post(f"{profiles.base}/{mfa['id']}/migrate", json={"clientId": APP1}, headers={"If-Match": "*"})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["profile"]["kind"] == "app" and result["requiredPermissions"] == GRANTED
    assert result["profile"]["history"][-1]["event"] == "migrated"
    secret_name = f"profile-{profiles.tenant}-{mfa['id']}"
    assert profiles.validate(mfa)["messageId"] == "CERTIFICATE_NOT_REGISTERED"
    assert profiles.get(mfa)["passwordSet"] is True  # a failed test keeps the old password
    sim.control.add_app_certificate(APP1, pem=api.get(result["certificateUrl"]).text)
    sim.control.clear_counters()
    assert profiles.validate(mfa)["status"] == "passed"
    after = profiles.get(mfa)
    assert after["passwordSet"] is False and after["history"][-1]["event"] == "secretRetired"
    assert keyvault_ops(sim).get("keyvault.secrets.delete") == 1, keyvault_ops(sim)
    sim.control.clear_counters()
    assert profiles.validate(mfa)["status"] == "passed"
    assert "keyvault.secrets.delete" not in keyvault_ops(sim)  # once
    assert secret_name not in api.get(f"{profiles.base}/{mfa['id']}").text


def test_pfx_password_and_key_appear_nowhere(profiles, api, sim, app_host, storage_dump):
    pfx = own_pfx(90)
    created = profiles.create_app(pfx=pfx, password=PFX_CANARY)
    sim.control.add_app_certificate(APP1, pem=profiles.certificate(created))
    responses = [profiles.validate(created), profiles.get(created),
                 api.get(f"{profiles.base}/{created['id']}/validations").json()]
    der = api.get(f"{profiles.base}/{created['id']}/certificate", headers={"Accept": "application/pkix-cert"})
    assert der.headers["Content-Type"].startswith("application/pkix-cert") and b"PRIVATE" not in der.content
    text = repr(responses)
    stored, log = storage_dump(), app_host.output
    for canary in (PFX_CANARY, pfx[:64], pfx[-64:-4]):
        assert canary not in text and canary not in stored and canary not in log
    assert "PRIVATE KEY" not in stored and "PRIVATE KEY" not in log


def test_a_retired_mfa_profile_is_pointed_to_the_migration(api, tenant_alias):
    from tests.demo import FABRIKAM

    tenant = tenant_alias(FABRIKAM)  # retired legacy sign-in
    mfa = api.post(f"/api/tenants/{tenant}/profiles", json={
        "name": unique("retired"), "mfaEnabled": True, "username": "mfa@fabrikam.onmicrosoft.com",
        "password": "qwertyuiopasdfgh",
        "adminCenter": {"mode": "custom", "url": "https://fabrikam-admin.sharepoint.com"}}).json()
    out = api.post(f"/api/tenants/{tenant}/profiles/{mfa['id']}/validate").json()
    assert out["messageId"] == "LEGACY_AUTH_RETIRED"
    assert any("/migrate" in s for s in out["solutions"]), out["solutions"]


def test_a_batch_job_validates_app_profiles_through_the_queue(profiles, api, sim):
    from tests.e2e.test_jobs_and_pool import wait_job

    consented = profiles.create_app(pfx=demo_pfx(sim), password=DEMO_PFX_PASSWORD)
    unconsented = profiles.create_app(APP2, pfx=demo_pfx(sim), password=DEMO_PFX_PASSWORD)
    r = api.post(f"/api/tenants/{profiles.tenant}/validation-jobs",
                 json={"profileIds": [consented["id"], unconsented["id"]]})
    assert r.status_code == 202, r.text
    job = wait_job(api, profiles.tenant, r.json()["id"])
    assert (job["done"], job["passed"], job["failed"]) == (2, 1, 1) and job["byMessageId"] == {"APP_CONSENT_MISSING": 1}
    assert profiles.get(consented)["lastValidation"]["status"] == "passed"
    assert profiles.get(consented)["sharePointUrl"] == "https://contoso.sharepoint.com"
