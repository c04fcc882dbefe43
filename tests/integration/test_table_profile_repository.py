"""TableProfileRepository against Azurite: transactions, ETags, name index, paging, isolation."""
import uuid
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.table_profile_repository import TableProfileRepository
from shared.domain.errors import NameConflict, PreconditionFailed, ProfileNotFound
from shared.domain.profile import AdminCenter, LastValidation, SecretRef, ServiceAccountProfile

T1, T2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


@pytest.fixture
def repo(storage_connection_string):
    service = TableServiceClient.from_connection_string(storage_connection_string)
    name = "Profiles" + uuid.uuid4().hex[:8]
    table = service.create_table(name)
    yield TableProfileRepository(table)
    service.delete_table(name)


def make(tenant=T1, name="Backup", mfa=False):
    now = datetime.now(timezone.utc)
    pid = str(uuid.uuid4())
    return ServiceAccountProfile(id=pid, tenant_id=tenant, name=name, description="", mfa_enabled=mfa,
                                 username="admin@contoso.onmicrosoft.com", admin_center=AdminCenter(),
                                 secret=SecretRef(f"profile-{tenant}-{pid}", "abc"), password_updated_at=now,
                                 created_at=now, updated_at=now)


def test_add_get_round_trip_with_etag(repo):
    p = repo.add(make(mfa=True))
    got = repo.get(T1, p.id)
    assert got.etag == p.etag and got.etag.startswith('W/"')
    assert replace(got, etag=None) == replace(p, etag=None)


def test_tenant_isolation(repo):
    p = repo.add(make())
    with pytest.raises(ProfileNotFound):
        repo.get(T2, p.id)


def test_names_are_unique_per_tenant_atomically(repo):
    repo.add(make(name="Backup"))
    with pytest.raises(NameConflict):
        repo.add(make(name="  backup "))
    repo.add(make(tenant=T2, name="Backup"))


def test_rename_moves_the_name_index_and_etag_guards(repo):
    p = repo.add(make(name="Old"))
    q = repo.update(replace(p, name="New"), previous_name="Old", etag=p.etag)
    assert repo.name_exists(T1, "new") and not repo.name_exists(T1, "old")
    repo.add(make(name="Old"))  # old name is free again
    with pytest.raises(PreconditionFailed):
        repo.update(replace(p, description="stale"), previous_name="New", etag=p.etag)
    with pytest.raises(PreconditionFailed):
        repo.delete(T1, p.id, etag=p.etag)
    repo.delete(T1, p.id, etag=q.etag)
    assert not repo.name_exists(T1, "New")


def test_list_pages_and_filters(repo):
    for i in range(5):
        repo.add(make(name=f"c{i}"))
    mfa = repo.add(make(name="m", mfa=True))
    repo.record_validation(mfa, LastValidation("failed", "MFA_ENABLED", datetime.now(timezone.utc)))
    first = repo.list(T1, page_size=4)
    assert len(first.items) == 4 and first.continuation_token
    second = repo.list(T1, page_size=4, continuation_token=first.continuation_token)
    assert len(second.items) == 2 and second.continuation_token is None
    assert [p.id for p in repo.list(T1, kind="mfa").items] == [mfa.id]
    assert [p.last_validation.message_id for p in repo.list(T1, last_status="failed").items] == ["MFA_ENABLED"]
    assert len(repo.list(T1, last_status="never").items) == 5
    assert repo.list(T2).items == []


def test_a_forged_continuation_token_is_invalid_input(repo):
    import base64
    import json

    from shared.domain.errors import InvalidInput

    for token in ("%%%not-base64", base64.urlsafe_b64encode(json.dumps({"PartitionKey": 5}).encode()).decode()):
        try:
            repo.list(T1, continuation_token=token)
        except InvalidInput as exc:
            assert exc.errors[0].field == "continuationToken"
        else:  # Azurite may accept an odd token and answer a page: never a 500, never another tenant
            assert all(p.tenant_id == T1 for p in repo.list(T1, continuation_token=token).items)


def test_an_app_profile_round_trips_with_its_certificates_and_learned_facts(repo):
    from datetime import timedelta

    from shared.domain.certificates import CertificateInfo
    from shared.domain.profile import AppRegistration

    now = datetime.now(timezone.utc).replace(microsecond=0)

    def cert(version):
        return CertificateInfo(name="app-x", version=version, thumbprint="ab" * 20, thumbprint_sha256="q" * 43,
                               not_before=now, not_after=now + timedelta(days=365),
                               key_id=f"https://v.vault.azure.net/keys/app-x/{version}", cer=b"\x30\x82" + bytes(900))

    p = replace(make(), secret=None, username="", app=AppRegistration(
        "c0ffee00-0000-4000-8000-000000000001", cert("v2"), previous_certificate=cert("v1"), workload="governance"))
    added = repo.add(p)
    got = repo.get(T1, p.id)
    assert got.kind.value == "app" and replace(got, etag=None) == replace(added, etag=None)
    assert [pr.id for pr in repo.list(T1, kind="app").items] == [p.id]
    repo.record_validation(got, LastValidation("passed", "CERTIFICATE_EXPIRING", now),
                           sharepoint_url="https://contoso.sharepoint.com", certificate_alert=30)
    again = repo.get(T1, p.id)
    assert again.app.sharepoint_url == "https://contoso.sharepoint.com" and again.app.alert == 30
    assert again.app.certificate == got.app.certificate and again.app.previous_certificate == cert("v1")
    repo.record_validation(again, LastValidation("passed", None, now), certificate_alert=-1)
    assert repo.get(T1, p.id).app.alert is None
