"""The app profile's Validation Test rules: permissions from the manifest (data), the certificate's
dates, and the catalog messages they lead to on path ``app``."""
from datetime import datetime, timedelta, timezone

import pytest

from shared.domain.app_validation import (admin_consent_url, certificate_signal, check_permissions,
                                          permission_manifest, permission_signal, required_permissions)
from shared.domain.certificates import CertificateInfo
from shared.domain.troubleshooting import Signal, classify

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
FULL = {"graph": ("Sites.FullControl.All", "User.Read.All"), "sharepoint": ("Sites.FullControl.All",)}


def cert(days_left: int) -> CertificateInfo:
    return CertificateInfo("c", "v", "ab" * 20, "x", NOW - timedelta(days=300), NOW + timedelta(days=days_left),
                           "https://v/keys/c/v", b"der")


def message(code):
    return classify(Signal(code=code, path="app")).message_id if code else None


@pytest.mark.parametrize("roles, code, message_id", [
    (FULL, None, None),
    ({"graph": ("sites.fullcontrol.all", "USER.READ.ALL"), "sharepoint": ("Sites.FullControl.All",)}, None, None),
    ({"graph": (), "sharepoint": ()}, "APP_NO_ROLES", "APP_CONSENT_MISSING"),
    ({"graph": ("User.Read.All",), "sharepoint": ("Sites.FullControl.All",)}, "APP_ROLES_MISSING",
     "APP_PERMISSION_MISSING"),
    ({"graph": FULL["graph"], "sharepoint": ()}, "APP_ROLES_MISSING", "APP_PERMISSION_MISSING"),
])
def test_roles_against_the_backup_manifest(roles, code, message_id):
    check = check_permissions("backup", roles)
    assert permission_signal(check) == code and message(code) == message_id


def test_what_is_missing_is_named_per_resource():
    check = check_permissions("backup", {"graph": ("User.Read.All",), "sharepoint": ()})
    assert check.missing == {"graph": ("Sites.FullControl.All",), "sharepoint": ("Sites.FullControl.All",)}


@pytest.mark.parametrize("days_left, code, message_id", [
    (365, None, None), (30, None, None), (29, "CERT_EXPIRING", "CERTIFICATE_EXPIRING"),
    (0, "CERT_EXPIRED", "CERTIFICATE_EXPIRED"), (-3, "CERT_EXPIRED", "CERTIFICATE_EXPIRED"),
])
def test_certificate_dates(days_left, code, message_id):
    assert certificate_signal(cert(days_left), NOW) == code and message(code) == message_id


def test_the_manifest_is_data_and_every_workload_names_both_resources():
    manifest = permission_manifest()
    assert set(manifest["workloads"]) >= {"backup", "governance"}
    for workload in manifest["workloads"]:
        needed = required_permissions(workload)
        assert needed["graph"] and needed["sharepoint"]
    assert {"AuditLog.Read.All", "Policy.Read.All"} <= set(manifest["optional"]["graph"])


def test_admin_consent_url():
    url = admin_consent_url("https://login.microsoftonline.com", "11111111-1111-4111-8111-111111111111",
                            "c0ffee00-0000-4000-8000-000000000002")
    assert url == ("https://login.microsoftonline.com/11111111-1111-4111-8111-111111111111/adminconsent"
                   "?client_id=c0ffee00-0000-4000-8000-000000000002")


def test_an_expiring_certificate_is_a_warning_of_a_passed_test():
    diagnosis = classify(Signal(code="CERT_EXPIRING", path="app"), params={"description": "19 days left"})
    assert (diagnosis.status, diagnosis.message_id) == ("passed", "CERTIFICATE_EXPIRING")
    assert diagnosis.solutions and "19 days left" in diagnosis.cause
    assert classify(Signal(code="CERT_EXPIRED", path="app")).status == "failed"


def test_a_stronger_permission_covers_a_weaker_one():
    from shared.domain.app_validation import check_permissions, covered

    assert {"sites.read.all", "sites.readwrite.all", "sites.manage.all"} <= covered(("Sites.FullControl.All",))
    check = check_permissions("governance", {"graph": ("Sites.FullControl.All", "Directory.Read.All"),
                                             "sharepoint": ("Sites.FullControl.All",)})
    assert check.complete, check.missing
    weaker = check_permissions("backup", {"graph": ("Sites.Read.All", "User.Read.All"),
                                          "sharepoint": ("Sites.FullControl.All",)})
    assert weaker.missing["graph"] == ("Sites.FullControl.All",)  # implication goes one way only


def test_sites_selected_is_accepted_in_place_of_full_control_with_its_limitation():
    from shared.domain.app_validation import check_permissions
    from shared.domain.profile import limitation_catalog

    check = check_permissions("backup", {"graph": ("Sites.FullControl.All", "User.Read.All"),
                                         "sharepoint": ("Sites.Selected",)})
    assert check.complete and check.limitations == ("APP_SITES_SELECTED",)
    assert "Sites.Selected" in limitation_catalog()["APP_SITES_SELECTED"]["text"]


def test_a_conditional_limitation_is_not_a_profile_limitation():
    from shared.domain.profile import Kind, applicable_limitations

    assert applicable_limitations(Kind.APP) == ()
    assert "NO_GHOST_GUEST_USERS_RULE" not in applicable_limitations(Kind.MFA)
    assert "NO_GHOST_GUEST_USERS_RULE" in applicable_limitations(Kind.MFA, legacy_apps_blocked=True)
