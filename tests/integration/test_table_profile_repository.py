"""TableProfileRepository against Azurite: the name index (creates, orphans, renames), ETags, paging,
isolation."""
import uuid
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.table_profile_repository import TableProfileRepository
from shared.domain.errors import DependencyUnavailable, NameConflict, PreconditionFailed, ProfileNotFound
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


def test_a_create_inserts_the_name_row_then_the_profile_row_without_a_transaction(counted):
    repo, counting = counted
    p = repo.add(make(name="Two rows"))
    table = repo._table.table_name
    assert counting.writes == [f"POST /devstoreaccount1/{table}", f"POST /devstoreaccount1/{table}"]
    assert repo.get(T1, p.id).etag == p.etag and repo.name_exists(T1, "two rows")


def test_a_reserved_name_is_held_before_the_block_runs_and_add_writes_only_the_profile_row(counted):
    repo, counting = counted
    p = make(name="Held")
    with repo.reserving(T1, "Held", p.id):
        assert len(counting.writes) == 1 and counting.reads == [] and repo.name_exists(T1, "held")
        with pytest.raises(NameConflict):  # held for p: another create of the name fails at once
            with repo.reserving(T1, " held", str(uuid.uuid4())):
                pytest.fail("the block of a taken name must not run")
        counting.writes.clear(), counting.reads.clear()
        saved = repo.add(p)
    assert len(counting.writes) == 1 and counting.reads == []  # the profile row alone
    assert repo.get(T1, p.id).etag == saved.etag
    with pytest.raises(NameConflict):  # a replay of p's create (same id, same name)
        with repo.reserving(T1, "Held", p.id):
            pytest.fail("the block of a taken name must not run")


def test_a_block_that_fails_before_add_frees_the_name(repo):
    with pytest.raises(RuntimeError):
        with repo.reserving(T1, "Abandoned", str(uuid.uuid4())):
            raise RuntimeError("the secret could not be written")
    assert not repo.name_exists(T1, "abandoned")
    repo.add(make(name="Abandoned"))


def test_of_concurrent_creates_of_one_name_exactly_one_succeeds(repo):
    from concurrent.futures import ThreadPoolExecutor

    def create(_):
        try:
            return repo.add(make(name="Race"))
        except NameConflict:
            return None

    with ThreadPoolExecutor(8) as pool:
        created = [p for p in pool.map(create, range(8)) if p is not None]
    assert len(created) == 1
    assert [p.id for p in repo.list(T1).items] == [created[0].id]


def test_a_failed_profile_insert_frees_the_name_again(counted):
    repo, counting = counted
    original = repo._table.create_entity

    def failing(entity, **kwargs):  # the name row goes through, the profile row does not
        if entity.get("EntityType") == "profile":
            from azure.core.exceptions import ServiceRequestError
            raise ServiceRequestError("injected: connection lost")
        return original(entity, **kwargs)

    repo._table.create_entity = failing
    with pytest.raises(DependencyUnavailable):
        repo.add(make(name="Retry me"))
    repo._table.create_entity = original
    assert not repo.name_exists(T1, "Retry me")
    repo.add(make(name="Retry me"))


def _left_behind(repo, name, *, profile_id=None):
    """A name row without its profile, as a create that stopped between its inserts leaves it."""
    from shared.adapters.table_profile_repository import _name_row_key

    repo._table.create_entity({"PartitionKey": T1, "RowKey": _name_row_key(name), "EntityType": "name",
                               "ProfileId": profile_id or str(uuid.uuid4())})


def later(repo, minutes):
    """``repo`` with a clock ``minutes`` ahead (the name rows' ages)."""
    from datetime import timedelta

    return TableProfileRepository(repo._table, clock=lambda: datetime.now(timezone.utc) + timedelta(minutes=minutes))


def test_a_name_left_without_its_profile_is_taken_over_only_after_orphan_after(repo):
    _left_behind(repo, "Stopped")
    with pytest.raises(NameConflict):  # it may be a create still under way
        repo.add(make(name="Stopped"))
    assert repo.name_exists(T1, "stopped")
    after = later(repo, 6)
    assert not after.name_exists(T1, "stopped")
    p = after.add(make(name="Stopped"))
    assert after.get(T1, p.id).name == "Stopped" and after.name_exists(T1, "stopped")
    with pytest.raises(NameConflict):  # now it is p's: old, but its profile exists
        after.add(make(name="stopped"))


def test_of_two_creates_taking_over_one_left_name_only_one_wins(repo, monkeypatch):
    _left_behind(repo, "Contested")
    after = later(repo, 6)
    first = make(name="Contested")
    is_orphan = after._is_orphan

    def and_meanwhile(row):  # another create takes the row over between our read and our update
        found = is_orphan(row)
        monkeypatch.setattr(after, "_is_orphan", is_orphan)
        later(repo, 6).add(first)
        return found

    monkeypatch.setattr(after, "_is_orphan", and_meanwhile)
    with pytest.raises(NameConflict):
        after.add(make(name="Contested"))
    assert [p.id for p in repo.list(T1).items] == [first.id]


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


class _CountingTransport:
    """A transport that records each request's method and path and can fail the next write before it
    leaves (the connection is lost: what the SDK reports once its retries are spent)."""

    def __init__(self):
        from azure.core.pipeline.transport import RequestsTransport

        class Transport(RequestsTransport):
            def send(inner, request, **kwargs):
                from urllib.parse import urlsplit

                from azure.core.exceptions import ServiceRequestError

                if request.method == "GET":
                    self.reads.append(urlsplit(request.url).path)
                else:
                    self.writes.append(f"{request.method} {urlsplit(request.url).path}")
                    if self.fail_writes:
                        raise ServiceRequestError("injected: connection lost before the request was sent")
                return super().send(request, **kwargs)

        self.writes: list[str] = []
        self.reads: list[str] = []
        self.fail_writes = False
        self.transport = Transport(use_env_settings=False)


@pytest.fixture
def counted(storage_connection_string, repo):
    from azure.data.tables import TableClient

    counting = _CountingTransport()
    table = TableClient.from_connection_string(storage_connection_string, repo._table.table_name,
                                               transport=counting.transport, retry_total=0)
    return TableProfileRepository(table), counting


def _row(repo, profile_id):
    """The stored row's columns (without the keys' metadata)."""
    return dict(repo._table.get_entity(T1, profile_id))


def _as_written(entity):
    """``to_entity``'s columns as the SDK writes them (a None value is not sent)."""
    return {k: v for k, v in entity.items() if v is not None}


def test_an_update_that_keeps_the_name_is_one_conditional_write_not_a_transaction(counted):
    repo, counting = counted
    p = repo.add(make(name="Same"))
    counting.writes.clear()
    q = repo.update(replace(p, description="changed"), previous_name="Same", etag=p.etag)
    # Not read first in this thread: the whole row is replaced.
    assert len(counting.writes) == 1 and counting.writes[0].startswith("PUT ") and "$batch" not in counting.writes[0]
    got = repo.get(T1, p.id)
    assert got.description == "changed" and got.etag == q.etag != p.etag
    assert repo.name_exists(T1, "same") and repo.name_exists(T1, "same", exclude_profile_id=p.id) is False
    # A name that differs only in case and spaces is the same index row: still no transaction.
    counting.writes.clear()
    r = repo.update(replace(got, name="  SAME "), previous_name="Same", etag=got.etag)
    assert len(counting.writes) == 1 and "$batch" not in counting.writes[0]
    assert repo.get(T1, p.id).name == "  SAME " and r.etag != q.etag


def test_a_read_then_update_merges_the_changed_columns_and_leaves_the_row_a_replace_would(counted):
    from azure.data.tables import TableEntity

    from shared.adapters.table_profile_repository import _changed_columns, to_entity

    repo, counting = counted
    p = repo.add(make(name="Merged"))
    current = repo.get(T1, p.id)
    updated = replace(current, description="new text", updated_at=datetime.now(timezone.utc))
    stored = repo._table.get_entity(T1, p.id)
    # Only what differs (the keys, the description and the time of the change) goes on the wire.
    assert set(_changed_columns(stored, to_entity(updated))) == {"PartitionKey", "RowKey", "Description", "UpdatedAt"}
    counting.writes.clear()
    saved = repo.update(updated, previous_name="Merged", etag=current.etag)
    assert len(counting.writes) == 1 and counting.writes[0].startswith("PATCH ")
    assert _row(repo, p.id) == _as_written(to_entity(updated))  # exactly the row a replace writes
    got = repo.get(T1, p.id)
    assert got.etag == saved.etag != current.etag and replace(got, etag=None) == replace(updated, etag=None)
    # A column the new profile leaves out is dropped, which only a replace does.
    validated = repo.get(T1, p.id)
    repo.record_validation(validated, LastValidation("passed", None, datetime.now(timezone.utc)))
    validated = repo.get(T1, p.id)
    assert _row(repo, p.id)["LastValidationAt"] is not None
    assert _changed_columns(TableEntity(_row(repo, p.id)), to_entity(replace(validated, last_validation=None))) is None
    counting.writes.clear()
    repo.update(replace(validated, last_validation=None), previous_name="Merged", etag=validated.etag)
    assert len(counting.writes) == 1 and counting.writes[0].startswith("PUT ")
    assert "LastValidationAt" not in _row(repo, p.id) and repo.get(T1, p.id).last_validation is None


def test_a_merge_needs_the_version_this_thread_read(counted):
    """Merging needs the row read to be the very version the write is conditional on, read in this
    thread, and used once; anything else replaces the row (with the same ETag condition)."""
    import threading

    repo, counting = counted
    p = repo.add(make(name="Versions"))
    old = repo.get(T1, p.id)
    counting.writes.clear()
    newer = repo.update(replace(old, description="newer"), previous_name="Versions", etag=old.etag)
    newest = repo.update(replace(newer, description="newest"), previous_name="Versions", etag=newer.etag)
    assert [w.split()[0] for w in counting.writes] == ["PATCH", "PUT"]  # newer was not read here
    current = repo.get(T1, p.id)
    counting.writes.clear()
    with pytest.raises(PreconditionFailed):  # the read is not the version named: replace, refused
        repo.update(replace(old, description="stale"), previous_name="Versions", etag=old.etag)
    with pytest.raises(PreconditionFailed):  # an older version than the one read: replace, refused
        repo.update(replace(current, description="stale"), previous_name="Versions", etag=newer.etag)
    assert [w.split()[0] for w in counting.writes] == ["PUT", "PUT"]
    assert repo.get(T1, p.id).description == "newest" == current.description and current.etag == newest.etag
    elsewhere = []
    worker = threading.Thread(target=lambda: elsewhere.append(repo.get(T1, p.id)))
    repo._read.row = None
    worker.start()
    worker.join()
    counting.writes.clear()
    latest = repo.update(replace(elsewhere[0], description="from a read elsewhere"), previous_name="Versions",
                         etag=elsewhere[0].etag)
    assert [w.split()[0] for w in counting.writes] == ["PUT"]  # read in another thread only
    assert repo.get(T1, p.id).description == "from a read elsewhere" and repo.get(T1, p.id).etag == latest.etag


def test_a_rename_is_still_one_transaction(counted):
    repo, counting = counted
    p = repo.add(make(name="First"))
    counting.writes.clear()
    repo.update(replace(p, name="Second"), previous_name="First", etag=p.etag)
    assert len(counting.writes) == 1 and counting.writes[0].endswith("/$batch")


@pytest.mark.parametrize("read_first", [False, True], ids=["replace", "merge"])
def test_a_single_row_update_maps_refusals_as_the_transaction_does(counted, read_first):
    repo, counting = counted
    p = repo.add(make(name="Guarded"))
    if read_first:
        p = repo.get(T1, p.id)
    repo._table.update_entity({"PartitionKey": T1, "RowKey": p.id, "Description": "someone else"})
    counting.writes.clear()
    with pytest.raises(PreconditionFailed) as stale:  # 412: the ETag is not the current one
        repo.update(replace(p, description="stale"), previous_name="Guarded", etag=p.etag)
    assert getattr(stale.value.__cause__, "status_code", None) == 412
    assert counting.writes[0].split()[0] == ("PATCH" if read_first else "PUT")
    current = repo.get(T1, p.id)
    assert current.description == "someone else"
    repo._table.delete_entity(T1, p.id)
    if not read_first:
        repo._read.row = None
    counting.writes.clear()
    with pytest.raises(PreconditionFailed) as gone:  # 404: the row was deleted meanwhile
        repo.update(replace(current, description="late"), previous_name="Guarded", etag=current.etag)
    assert getattr(gone.value.__cause__, "status_code", None) == 404
    assert counting.writes[0].split()[0] == ("PATCH" if read_first else "PUT")


@pytest.mark.parametrize("read_first", [False, True], ids=["replace", "merge"])
def test_a_single_row_update_without_storage_is_dependency_unavailable(counted, read_first):
    from azure.core.exceptions import ServiceRequestError

    from shared.domain.errors import DependencyUnavailable

    repo, counting = counted
    p = repo.add(make(name="Offline"))
    if read_first:
        p = repo.get(T1, p.id)
    counting.fail_writes = True
    with pytest.raises(DependencyUnavailable) as down:
        repo.update(replace(p, description="lost"), previous_name="Offline", etag=p.etag)
    assert isinstance(down.value.__cause__, ServiceRequestError) and down.value.retry_after == 5
    counting.fail_writes = False
    assert repo.get(T1, p.id).description == ""
