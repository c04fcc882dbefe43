"""Account-pool leases on a real table (Azurite): no double lease under concurrency, resting, health."""
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.table_pool_repository import TablePoolRepository
from shared.domain.errors import InvalidInput
from shared.domain.pool import PoolExhausted
from shared.domain.profile import AdminCenter, AdminCenterMode, LastValidation, SecretRef, ServiceAccountProfile
from shared.services.pool import PoolServices
from tests.fakes import FakeProfileRepository

T = "11111111-1111-4111-8111-111111111111"


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.now


def profile(i, mfa=True):
    now = datetime.now(timezone.utc)
    pid = str(uuid.uuid4())
    return ServiceAccountProfile(id=pid, tenant_id=T, name=f"m{i}", description="", mfa_enabled=mfa,
                                 username=f"pool{i}@contoso.onmicrosoft.com",
                                 admin_center=AdminCenter(AdminCenterMode.CUSTOM, "https://contoso-admin.sharepoint.com"),
                                 secret=SecretRef(f"profile-{T}-{pid}", "v1"), password_updated_at=now,
                                 created_at=now, updated_at=now)


@pytest.fixture
def pool(storage_connection_string):
    service = TableServiceClient.from_connection_string(storage_connection_string)
    name = "PoolLeases" + uuid.uuid4().hex[:8]
    table = service.create_table(name)
    profiles = FakeProfileRepository()
    members = [profiles.add(profile(i)) for i in range(5)]
    svc = PoolServices(TablePoolRepository(table), profiles, "https://demo.vault.azure.net/", 300, Clock())
    svc.put_pool(T, [m.id for m in members])
    yield svc, members
    service.delete_table(name)


def test_twenty_concurrent_requests_over_five_members_never_double_lease(pool):
    svc, members = pool

    def attempt(_):
        try:
            return svc.lease(T, correlation_id="c")
        except PoolExhausted as exc:
            return exc

    with ThreadPoolExecutor(20) as ex:
        results = list(ex.map(attempt, range(20)))
    leases = [r for r in results if not isinstance(r, PoolExhausted)]
    refused = [r for r in results if isinstance(r, PoolExhausted)]
    assert sorted(l.profile_id for l in leases) == sorted(m.id for m in members)
    assert len(refused) == 15 and all(r.retry_after == 300 for r in refused)
    assert all("password" not in str(l).lower() and l.secret_ref.name.startswith("profile-") for l in leases)


def test_least_recently_used_and_throttled_member_rests(pool):
    svc, members = pool
    first = svc.lease(T, lease_seconds=30, correlation_id="c")
    svc.release(T, first.lease_id, retry_after_seconds=120, correlation_id="c")
    svc.clock.now += timedelta(seconds=1)
    seen = set()
    for _ in range(4):
        seen.add(svc.lease(T, lease_seconds=30, correlation_id="c").profile_id)
    assert first.profile_id not in seen and len(seen) == 4
    with pytest.raises(PoolExhausted) as info:
        svc.lease(T, correlation_id="c")
    assert info.value.retry_after == 30  # the 30 s leases end before the 119 s left of the rest
    svc.clock.now += timedelta(seconds=121)
    state = {m.profile_id: m for m in svc.get_pool(T).members}
    assert state[first.profile_id].resting is False and state[first.profile_id].throttle_reports == 1
    assert svc.lease(T, correlation_id="c").profile_id == first.profile_id  # least recently used


def test_failing_member_is_not_leased_and_pool_takes_only_mfa_profiles(pool):
    svc, members = pool
    bad = members[0]
    svc.profiles.record_validation(bad, LastValidation("failed", "INVALID_APP_PASSWORD", svc.clock.now))
    got = {svc.lease(T, correlation_id="c").profile_id for _ in range(4)}
    assert bad.id not in got
    with pytest.raises(PoolExhausted):
        svc.lease(T, correlation_id="c")
    common = svc.profiles.add(profile(9, mfa=False))
    with pytest.raises(InvalidInput) as info:
        svc.put_pool(T, [members[1].id, common.id, str(uuid.uuid4())])
    assert [(e.field, e.code) for e in info.value.errors] == [("members[1]", "notMfa"), ("members[2]", "notFound")]
