"""App profiles over the triggers and the fakes: create (generated or imported certificate), the
public certificate download, PATCH rules per kind, rotation, migration, delete, and what the
Validation Test's outcome does to the row (old password retired, overlap ended, expiry alerts)."""
from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from shared.domain.profile import CERTIFICATE_ALERT_DAYS, certificate_alert, sharepoint_url_of
from shared.domain.validation import CertificateStatus, Evidence, ValidationOutcome
from shared.services.validation import Publish
from tests.fakes import make_certificate
from tests.inprocess import InProcessApp
from tests.unit.test_triggers import check

T = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"
APP_ID = "c0ffee00-0000-4000-8000-000000000001"
PFX_PASSWORD = "Canary-Pfx-7c2!"
APP = {"kind": "app", "name": "Backup app", "clientId": APP_ID, "certificate": {"generate": True}}
MFA = {"name": "MFA account", "username": "mfa@contoso.onmicrosoft.com", "password": "qwertyuiopasdfgh",
       "mfaEnabled": True, "adminCenter": {"mode": "custom", "url": "https://contoso-admin.sharepoint.com"}}


@pytest.fixture
def app():
    return InProcessApp()


def create(app, body=APP, tenant=T):
    r = app.call("createProfile", body=body, tenantId=tenant)
    assert r.status == 201, r.body
    return r.json()


def pfx(password: str = PFX_PASSWORD) -> tuple[bytes, x509.Certificate]:
    key, cert = make_certificate("CN=imported", datetime.now(timezone.utc), timedelta(days=90))
    return pkcs12.serialize_key_and_certificates(
        b"imported", key, cert, None, serialization.BestAvailableEncryption(password.encode())), cert


def test_an_app_profile_is_created_with_a_generated_certificate(app):
    profile = create(app)
    check("Profile", profile)
    assert profile["kind"] == "app" and profile["clientId"] == APP_ID and profile["username"] == ""
    assert profile["passwordSet"] is False and profile["workload"] == "backup"
    cert = profile["certificate"]
    assert len(cert["thumbprint"]) == 40 and 355 <= cert["daysLeft"] <= 366
    assert profile["adminConsentUrl"].endswith(f"/{T}/adminconsent?client_id={APP_ID}")
    assert profile["certificateUrl"] == f"/api/tenants/{T}/profiles/{profile['id']}/certificate"
    assert profile["requiredPermissions"] == {"graph": ["Sites.FullControl.All", "User.Read.All"],
                                              "sharepoint": ["Sites.FullControl.All"]}
    assert profile["history"][0]["event"] == "created" and app.secrets.versions == {}
    (name,) = app.certificates.versions
    assert name == f"app-{T}-{profile['id']}"


def test_the_public_certificate_downloads_as_pem_or_der_and_matches_the_thumbprint(app):
    profile = create(app)
    pem = app.call("getProfileCertificate", tenantId=T, profileId=profile["id"])
    assert pem.status == 200 and pem.headers["Content-Type"].startswith("application/x-pem-file")
    assert b"PRIVATE" not in pem.body and pem.body.startswith(b"-----BEGIN CERTIFICATE-----")
    der = app.call("getProfileCertificate", headers={"Accept": "application/pkix-cert"}, tenantId=T,
                   profileId=profile["id"])
    assert der.headers["Content-Type"].startswith("application/pkix-cert")
    assert x509.load_pem_x509_certificate(pem.body).public_bytes(serialization.Encoding.DER) == der.body
    assert x509.load_der_x509_certificate(der.body).fingerprint(hashes.SHA1()).hex() == \
        profile["certificate"]["thumbprint"]
    assert app.call("getProfileCertificate", tenantId=OTHER, profileId=profile["id"]).status == 404


def test_a_user_profile_has_no_certificate(app):
    profile = create(app, MFA)
    assert profile["kind"] == "mfa" and profile["certificate"] is None and profile["clientId"] is None
    assert app.call("getProfileCertificate", tenantId=T, profileId=profile["id"]).status == 404


def test_a_pfx_is_imported_and_its_password_is_never_kept(app):
    data, cert = pfx()
    body = {**APP, "certificate": {"pfx": base64.b64encode(data).decode(), "password": PFX_PASSWORD}}
    r = app.call("createProfile", body=body, tenantId=T)
    assert r.status == 201 and PFX_PASSWORD not in r.body.decode()
    assert r.json()["certificate"]["thumbprint"] == cert.fingerprint(hashes.SHA1()).hex()
    rows = json.dumps([repr(p) for p in app.profiles.rows.values()])
    assert PFX_PASSWORD not in rows and base64.b64encode(data).decode()[:40] not in rows


def test_a_wrong_pfx_password_names_the_field_and_writes_nothing(app):
    data, _ = pfx()
    body = {**APP, "certificate": {"pfx": base64.b64encode(data).decode(), "password": "wrong"}}
    r = app.call("createProfile", body=body, tenantId=T)
    assert r.status == 422 and [e["field"] for e in r.json()["errors"]] == ["certificate.pfx"]
    assert app.profiles.rows == {}


@pytest.mark.parametrize("body,fields", [
    ({**APP, "certificate": {"generate": True, "pfx": "AAAA"}}, {"certificate"}),
    ({**APP, "certificate": {}}, {"certificate"}),
    ({**APP, "certificate": {"generate": True, "password": "x"}}, {"certificate.password"}),
    ({k: v for k, v in APP.items() if k != "clientId"}, {"clientId"}),
    ({**APP, "clientId": "not-a-guid", "workload": "mining"}, {"clientId", "workload"}),
    ({**APP, "username": "a@b.com"}, {"username"}),
    ({**APP, "sharePointUrl": "https://evil.example.com"}, {"sharePointUrl"}),
])
def test_bad_app_bodies_name_every_field(app, body, fields):
    r = app.call("createProfile", body=body, tenantId=T)
    assert r.status == 422, r.body
    assert {e["field"] for e in r.json()["errors"]} == fields
    assert app.profiles.rows == {} and app.certificates.versions == {}


def test_a_name_conflict_creates_no_certificate(app):
    create(app)
    assert app.call("createProfile", body=APP, tenantId=T).status == 409
    assert len(app.certificates.versions) == 1


def test_a_failed_row_write_soft_deletes_the_new_certificate(app):
    app.profiles.fail_next_write = True
    assert app.call("createProfile", body=APP, tenantId=T).status >= 500
    assert app.profiles.rows == {} and set(app.certificates.versions) == app.certificates.deleted


def test_patch_takes_the_fields_of_the_profile_kind_only(app):
    profile = create(app)
    etag = {"If-Match": profile["etag"]}
    r = app.call("patchProfile", body={"username": "x@contoso.com", "mfaEnabled": True}, headers=etag,
                 tenantId=T, profileId=profile["id"])
    assert r.status == 422 and {e["field"] for e in r.json()["errors"]} == {"mfaEnabled", "username"}
    r = app.call("patchProfile", body={"name": "Renamed", "sharePointUrl": "https://contoso.sharepoint.com"},
                 headers=etag, tenantId=T, profileId=profile["id"])
    assert r.status == 200 and r.json()["name"] == "Renamed"
    assert r.json()["sharePointUrl"] == "https://contoso.sharepoint.com" and r.json()["kind"] == "app"
    user = create(app, MFA)
    r = app.call("patchProfile", body={"clientId": APP_ID}, headers={"If-Match": user["etag"]}, tenantId=T,
                 profileId=user["id"])
    assert r.status == 422 and r.json()["errors"][0]["field"] == "clientId"


def test_rotation_keeps_the_previous_certificate_for_the_overlap(app):
    profile = create(app)
    stale = app.call("rotateProfileCertificate", headers={"If-Match": 'W/"0"'}, tenantId=T, profileId=profile["id"])
    assert stale.status == 412
    r = app.call("rotateProfileCertificate", tenantId=T, profileId=profile["id"])
    assert r.status == 200, r.body
    rotated = r.json()
    assert rotated["previousCertificate"]["thumbprint"] == profile["certificate"]["thumbprint"]
    assert rotated["certificate"]["thumbprint"] != profile["certificate"]["thumbprint"]
    assert rotated["history"][-1]["event"] == "certificateRotated"
    (versions,) = app.certificates.versions.values()
    assert [v.version for v in versions] == ["v1", "v2"]
    user = create(app, MFA)
    assert app.call("rotateProfileCertificate", tenantId=T, profileId=user["id"]).status == 422


def test_an_mfa_profile_migrates_and_keeps_its_password_until_the_first_pass(app):
    user = create(app, MFA)
    r = app.call("migrateProfile", body={"clientId": APP_ID}, headers={"If-Match": user["etag"]}, tenantId=T,
                 profileId=user["id"])
    assert r.status == 200, r.body
    check("MigrationResult", r.json())
    result = r.json()
    migrated = result["profile"]
    assert migrated["kind"] == "app" and migrated["id"] == user["id"] and migrated["name"] == user["name"]
    assert migrated["sharePointUrl"] == "https://contoso.sharepoint.com"  # from the admin center URL
    assert migrated["passwordSet"] is True and migrated["history"][-1]["event"] == "migrated"
    assert result["certificateUrl"].endswith(f"/profiles/{user['id']}/certificate")
    assert APP_ID in result["adminConsentUrl"] and result["requiredPermissions"]["sharepoint"]
    assert app.secrets.deleted == set()  # retired only by the first passed Validation Test
    again = app.call("migrateProfile", body={"clientId": APP_ID}, tenantId=T, profileId=user["id"])
    assert again.status == 422
    listed = app.call("listProfiles", params={"kind": "app"}, tenantId=T).json()["items"]
    assert [p["id"] for p in listed] == [user["id"]]


def test_delete_soft_deletes_the_certificate(app):
    profile = create(app)
    r = app.call("deleteProfile", headers={"If-Match": profile["etag"]}, tenantId=T, profileId=profile["id"])
    assert r.status == 204 and app.certificates.deleted == set(app.certificates.versions)


# --- what an outcome does to the row ------------------------------------------------------------

def outcome(status="passed", message_id=None, days_left=200, rotated=True, sharepoint_url=None):
    now = datetime.now(timezone.utc)
    return ValidationOutcome(
        status=status, message_id=message_id, message="", solutions=(), checks=(), evidence=Evidence("app"),
        tested_at=now, duration_ms=1, certificate=CertificateStatus("ab" * 20, now, now + timedelta(days=days_left),
                                                                    days_left),
        certificate_rotated=rotated, sharepoint_url=sharepoint_url)


def stored(app, profile_id):
    return app.profiles.get(T, profile_id)


def test_the_first_pass_after_migration_retires_the_password(app):
    user = create(app, MFA)
    app.call("migrateProfile", body={"clientId": APP_ID}, tenantId=T, profileId=user["id"])
    validation = app.services.validation
    validation.store(stored(app, user["id"]), outcome("failed", "APP_CONSENT_MISSING"), correlation_id="c",
                     reason="manual")
    assert app.secrets.deleted == set() and stored(app, user["id"]).secret is not None
    validation.store(stored(app, user["id"]), outcome(sharepoint_url="https://contoso.sharepoint.com"),
                     correlation_id="c", reason="manual")
    after = stored(app, user["id"])
    assert after.secret is None and app.secrets.deleted == {f"profile-{T}-{user['id']}"}
    assert after.history[-1].event == "secretRetired" and after.last_validation.status == "passed"


def test_a_pass_with_the_new_certificate_ends_the_overlap_and_one_with_the_old_does_not(app):
    profile = create(app)
    app.call("rotateProfileCertificate", tenantId=T, profileId=profile["id"])
    validation = app.services.validation
    validation.store(stored(app, profile["id"]), outcome(rotated=False), correlation_id="c", reason="manual")
    assert stored(app, profile["id"]).app.previous_certificate is not None
    validation.store(stored(app, profile["id"]), outcome(rotated=True), correlation_id="c", reason="manual")
    assert stored(app, profile["id"]).app.previous_certificate is None


def test_the_discovered_sharepoint_url_is_remembered(app):
    profile = create(app)
    app.services.validation.store(stored(app, profile["id"]), outcome(sharepoint_url="https://contoso.sharepoint.com"),
                                  correlation_id="c", reason="manual")
    assert stored(app, profile["id"]).app.sharepoint_url == "https://contoso.sharepoint.com"


def test_scheduled_runs_publish_once_per_expiry_threshold_crossed(app):
    profile = create(app)
    validation = app.services.validation
    published = []
    for days in (40, 31, 30, 29, 20, 14, 13, 8, 7, 3, 0, -1):
        warning = "CERTIFICATE_EXPIRING" if 0 < days <= 30 else ("CERTIFICATE_EXPIRED" if days <= 0 else None)
        status = "failed" if days <= 0 else "passed"
        _, should = validation.store(stored(app, profile["id"]), outcome(status, warning, days_left=days),
                                     correlation_id="c", reason="scheduled", publish=Publish.ON_CHANGE)
        if should:
            published.append(days)
    # first result (news), then 30, 14, 7 and expired: never every night
    assert published == [40, 30, 14, 7, 0]


def test_alert_thresholds():
    assert CERTIFICATE_ALERT_DAYS == (30, 14, 7, 0)
    assert [certificate_alert(d) for d in (31, 30, 15, 14, 8, 7, 1, 0, -5)] == [None, 30, 30, 14, 14, 7, 7, 0, 0]
    assert sharepoint_url_of("https://contoso-admin.sharepoint.com/") == "https://contoso.sharepoint.com"
    assert sharepoint_url_of("https://contoso.sharepoint.com") is None


def test_a_rotation_resets_the_alert(app):
    profile = create(app)
    validation = app.services.validation
    validation.store(stored(app, profile["id"]), outcome(days_left=10), correlation_id="c", reason="manual")
    assert stored(app, profile["id"]).app.alert == 14
    app.call("rotateProfileCertificate", tenantId=T, profileId=profile["id"])
    assert stored(app, profile["id"]).app.alert is None
    assert replace(stored(app, profile["id"]).app, alert=None) == stored(app, profile["id"]).app


def test_a_portal_upserts_an_app_profile_by_signed_webhook(app):
    import time
    import uuid

    from shared.domain.profile import Password
    from shared.services.webhooks import sign

    app.secrets.set_secret("webhook-p1", Password("portal-key"))
    pid = str(uuid.uuid4())

    def send(profile, eid):
        raw = json.dumps({"specversion": "1.0", "id": eid, "source": "/portals/p1",
                          "type": "com.m365profiles.profile.upserted", "datacontenttype": "application/json",
                          "data": {"tenantId": T, "profileId": pid, "profile": profile}}).encode()
        ts = str(int(time.time()))
        return app.call("adminPortalWebhook", raw=raw, headers={
            "content-type": "application/cloudevents+json", "X-Portal-Id": "p1", "X-Signature-Timestamp": ts,
            "X-Signature": sign("portal-key", ts, raw)})

    assert send({**APP, "name": "From the portal"}, "e1").status == 202
    created = app.call("getProfile", tenantId=T, profileId=pid).json()
    assert created["kind"] == "app" and created["certificate"]["thumbprint"]
    assert send({"kind": "app", "name": "Renamed by the portal"}, "e2").status == 202
    renamed = app.call("getProfile", tenantId=T, profileId=pid).json()
    assert renamed["name"] == "Renamed by the portal" and renamed["certificate"] == created["certificate"]
    refused = send({"kind": "app", "username": "x@contoso.com"}, "e3")
    assert refused.status == 422 and refused.json()["errors"][0]["field"] == "username"
