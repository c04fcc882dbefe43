"""Profile use cases over fake ports: write order, conversion, rotation, ETags, no half-writes."""
import json

import pytest

from shared.contract.base import parse_body
from shared.contract.profiles import ProfileCreate, ProfilePatch, profile_out
from shared.cloud import endpoints_for
from shared.domain.errors import (DependencyUnavailable, NameConflict, PreconditionFailed,
                                  PreconditionRequired)
from shared.services.profiles import ProfileServices
from tests.fakes import FakeProfileRepository, FakeSecretStore

T = "11111111-1111-4111-8111-111111111111"


def create(svc, tenant, body, **kw):
    """The service behind POST .../profiles, with the body the contract checked."""
    return svc.create_profile(tenant, parse_body(ProfileCreate, json.dumps(body)).to_input(), **kw).profile


def patch(svc, tenant, profile_id, changes, **kw):
    return svc.patch_profile(tenant, profile_id, parse_body(ProfilePatch, json.dumps(changes)).changes(), **kw).profile


def get(svc, tenant, profile_id):
    return svc.get_profile(tenant, profile_id).profile
CANARY = "Canary-Pw-7f3a9c!"
MFA = {"name": "MFA account", "mfaEnabled": True, "username": "mfa@contoso.onmicrosoft.com",
       "password": "qwertyuiopasdfgh", "adminCenter": {"mode": "custom", "url": "https://contoso-admin.sharepoint.com"}}


@pytest.fixture
def svc():
    return ProfileServices(FakeProfileRepository(), FakeSecretStore(), endpoints_for("public"))


def test_create_writes_secret_then_row(svc):
    p = create(svc, T, {**MFA, "password": CANARY}, correlation_id="c1")
    assert p.secret.name == f"profile-{T}-{p.id}" and p.secret.version == "v1"
    assert svc.secrets.versions[p.secret.name][0][1] == CANARY
    body = profile_out(svc.view(p)).dump()
    assert CANARY not in str(body) and p.secret.name not in str(body) and "v1" not in str(body["passwordSet"])
    assert body["kind"] == "mfa" and body["passwordSet"] is True
    assert body["limitations"] == ["NO_INVITE_M365_USERS", "CLOUD_MANAGEMENT_FEATURES_LIMITED"]
    assert any("Global Administrator" in g for g in body["guidance"])


def test_default_admin_center_url_is_derived_from_the_onmicrosoft_domain(svc):
    p = create(svc, T, {"name": "a", "username": "admin@contoso.onmicrosoft.com", "password": "x"},
                           correlation_id="c")
    assert profile_out(svc.view(p)).dump()["adminCenter"] == {"mode": "default", "url": None,
                                             "effectiveUrl": "https://contoso-admin.sharepoint.com"}


def test_key_vault_down_writes_nothing(svc):
    svc.secrets.down = True
    with pytest.raises(DependencyUnavailable) as info:
        create(svc, T, MFA, correlation_id="c")
    assert info.value.retry_after == 7
    assert svc.profiles.rows == {}


def test_row_failure_after_secret_write_removes_the_orphan(svc):
    svc.profiles.fail_next_write = True
    with pytest.raises(DependencyUnavailable):
        create(svc, T, MFA, correlation_id="c")
    assert svc.profiles.rows == {} and len(svc.secrets.deleted) == 1


def test_name_unique_per_tenant_case_insensitive(svc):
    create(svc, T, MFA, correlation_id="c")
    with pytest.raises(NameConflict):
        create(svc, T, {**MFA, "name": "mfa ACCOUNT"}, correlation_id="c")
    create(svc, "22222222-2222-4222-8222-222222222222", MFA, correlation_id="c")


def test_clearing_mfa_converts_to_common_and_records_history(svc):
    p = create(svc, T, MFA, correlation_id="c")
    q = patch(svc, T, p.id, {"mfaEnabled": False}, if_match=p.etag, correlation_id="c")
    assert q.kind.value == "common" and q.limitations == ()
    assert [h.event for h in q.history] == ["created", "converted"]
    assert "MFA service account profile to a common" in q.history[-1].detail


def test_password_rotation_writes_a_new_version_and_references_it(svc):
    p = create(svc, T, MFA, correlation_id="c")
    q = patch(svc, T, p.id, {"password": "asdfghjklqwertyu"}, if_match=p.etag, correlation_id="c")
    assert (p.secret.version, q.secret.version) == ("v1", "v2")
    assert q.password_updated_at >= p.password_updated_at


def test_stale_row_write_disables_the_new_version(svc):
    p = create(svc, T, MFA, correlation_id="c")
    svc.profiles.fail_next_write = True
    with pytest.raises(DependencyUnavailable):
        patch(svc, T, p.id, {"password": "asdfghjklqwertyu"}, if_match=p.etag, correlation_id="c")
    assert get(svc, T, p.id).secret.version == "v1"
    assert svc.secrets.versions[p.secret.name][1][2] is False  # v2 disabled


def test_etag_required_and_checked(svc):
    p = create(svc, T, MFA, correlation_id="c")
    with pytest.raises(PreconditionRequired):
        patch(svc, T, p.id, {"description": "x"}, if_match=None, correlation_id="c")
    q = patch(svc, T, p.id, {"description": "x"}, if_match=p.etag, correlation_id="c")
    with pytest.raises(PreconditionFailed):
        patch(svc, T, p.id, {"description": "y"}, if_match=p.etag, correlation_id="c")
    with pytest.raises(PreconditionFailed):
        svc.delete_profile(T, p.id, if_match=p.etag, correlation_id="c")
    svc.delete_profile(T, p.id, if_match=q.etag, correlation_id="c")
    assert p.secret.name in svc.secrets.deleted


def test_patch_reports_rules_of_the_merged_result(svc):
    from shared.domain.errors import InvalidInput

    p = create(svc, T, {"name": "c", "username": "admin@contoso.onmicrosoft.com", "password": "x"},
                           correlation_id="c")
    with pytest.raises(InvalidInput) as info:
        patch(svc, T, p.id, {"mfaEnabled": True}, if_match=p.etag, correlation_id="c")
    assert {e.field for e in info.value.errors} == {"adminCenter.mode"}
