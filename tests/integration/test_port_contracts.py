"""One set of cases per port, run against its fake (``tests/fakes.py``) and its adapter (Azurite, the
simulator's Key Vault): the unit tests' fakes are only worth something if they keep the adapters'
promises, domain errors included.

Each subject fixture is parametrized ``fake``/``adapter`` and yields a :class:`Subject`: the port, a
``down()`` that gives the same kind of subject whose dependency does not answer, and for the queues a
``visible()`` that reads what a consumer would receive now.
"""
from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from azure.core.exceptions import AzureError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient

from devtools.azurite import free_port
from shared.adapters.storage import queue_client
from shared.domain.errors import (DependencyUnavailable, InvalidInput, NameConflict, NotFound, PreconditionFailed,
                                  ProfileNotFound, SecretMissing)
from shared.domain.jobs import ItemState, Job, JobItem, Reason, WorkMessage
from shared.domain.ports import ValidationRecord
from shared.domain.profile import AdminCenter, LastValidation, Password, SecretRef, ServiceAccountProfile
from tests import fakes

T1, T2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
KINDS = ["fake", "adapter"]


@dataclass
class Subject:
    port: Any
    kind: str
    down: Callable[[], Any]
    visible: Callable[[], list] | None = None
    poison: Callable[[], list] | None = None


# --- storage plumbing -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tables(storage_connection_string) -> TableServiceClient:
    return TableServiceClient.from_connection_string(storage_connection_string)


@pytest.fixture
def table(tables):
    name = "Contract" + uuid.uuid4().hex[:10]
    client = tables.create_table(name)
    yield client
    tables.delete_table(name)


@pytest.fixture(scope="module")
def dead_connection_string(azurite) -> str:
    """Azurite's account on ports nobody listens on: every request is refused."""
    return azurite.connection_string.replace(f":{azurite.queue_port}/", f":{free_port()}/").replace(
        f":{azurite.table_port}/", f":{free_port()}/")


def dead_table(dead_connection_string: str) -> TableClient:
    return TableClient.from_connection_string(dead_connection_string, "Dead", retry_total=0)


def dead_queue(dead_connection_string: str) -> QueueClient:
    return QueueClient.from_connection_string(dead_connection_string, "dead", retry_total=0)


@pytest.fixture
def new_queue(storage_connection_string):
    service = QueueServiceClient.from_connection_string(storage_connection_string)
    made = []

    def make(prefix: str) -> QueueClient:
        client = queue_client(service, f"{prefix}-{uuid.uuid4().hex[:10]}")
        client.create_queue()
        made.append(client)
        return client

    yield make
    for client in made:
        client.delete_queue()


def peek_all(queue: QueueClient) -> list[str]:
    return [m.content for m in queue.peek_messages(max_messages=32)]


def down_fake(fake):
    fake.down = True
    return fake


def table_subject(request, dead_connection_string: str, fake: type, adapter: type) -> Subject:
    """The fake, or the adapter on a fresh Azurite table; ``down()`` gives one that cannot answer."""
    if request.param == "fake":
        return Subject(fake(), "fake", lambda: down_fake(fake()))
    return Subject(adapter(request.getfixturevalue("table")), "adapter",
                   lambda: adapter(dead_table(dead_connection_string)))


def assert_down(call: Callable[[], Any], subject: Subject) -> None:
    """The call raises DependencyUnavailable; an adapter's keeps the SDK error as its cause."""
    with pytest.raises(DependencyUnavailable) as info:
        call()
    if subject.kind == "adapter":
        assert isinstance(info.value.__cause__, AzureError)


# --- ProfileRepository ------------------------------------------------------------------------------

@pytest.fixture(params=KINDS)
def profiles(request, dead_connection_string):
    from shared.adapters.table_profile_repository import TableProfileRepository

    return table_subject(request, dead_connection_string, fakes.FakeProfileRepository, TableProfileRepository)


def make_profile(tenant=T1, name="Backup", pid=None) -> ServiceAccountProfile:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    pid = pid or str(uuid.uuid4())
    return ServiceAccountProfile(id=pid, tenant_id=tenant, name=name, description="", mfa_enabled=False,
                                 username="admin@contoso.onmicrosoft.com", admin_center=AdminCenter(),
                                 secret=SecretRef(f"profile-{tenant}-{pid}", "abc"), password_updated_at=now,
                                 created_at=now, updated_at=now)


def test_profiles_round_trip_and_etags(profiles):
    repo = profiles.port
    saved = repo.add(make_profile())
    assert saved.etag
    got = repo.get(T1, saved.id)
    assert got == saved
    updated = repo.update(replace(got, description="changed"), previous_name="Backup", etag=got.etag)
    assert updated.etag and updated.etag != got.etag
    assert repo.get(T1, saved.id).description == "changed"
    repo.record_validation(updated, LastValidation("failed", "MFA_ENABLED", updated.created_at, job_id="job-1"))
    after = repo.get(T1, saved.id)
    assert (after.last_validation.status, after.description) == ("failed", "changed")
    assert after.last_validation.job_id == "job-1"  # a copy of that job's message is a duplicate
    repo.delete(T1, saved.id, etag=after.etag)
    with pytest.raises(ProfileNotFound):
        repo.get(T1, saved.id)


def test_profiles_not_found(profiles):
    repo = profiles.port
    p = repo.add(make_profile())
    ghost = make_profile()
    with pytest.raises(ProfileNotFound):
        repo.get(T2, p.id)  # another tenant's id is not found, not forbidden
    with pytest.raises(ProfileNotFound):
        repo.get(T1, ghost.id)
    with pytest.raises(ProfileNotFound):
        repo.delete(T1, ghost.id, etag='W/"1"')
    with pytest.raises(ProfileNotFound):
        repo.record_validation(ghost, LastValidation("passed", None, ghost.created_at))


def test_profiles_conflicts(profiles):
    repo = profiles.port
    p = repo.add(make_profile(name="Backup"))
    with pytest.raises(NameConflict):
        repo.add(make_profile(name="  backup "))
    assert repo.name_exists(T1, "BACKUP") and not repo.name_exists(T1, "backup", exclude_profile_id=p.id)
    repo.add(make_profile(tenant=T2, name="Backup"))  # names are unique per tenant only
    q = repo.update(replace(p, description="x"), previous_name="Backup", etag=p.etag)
    with pytest.raises(PreconditionFailed):
        repo.update(replace(p, description="stale"), previous_name="Backup", etag=p.etag)
    with pytest.raises(PreconditionFailed):
        repo.delete(T1, p.id, etag=p.etag)
    other = repo.add(make_profile(name="Other"))
    with pytest.raises(NameConflict):
        repo.update(replace(other, name="backup"), previous_name="Other", etag=other.etag)
    repo.delete(T1, p.id, etag=q.etag)


def test_profiles_list_order_and_pages(profiles):
    repo = profiles.port
    ids = sorted(repo.add(make_profile(name=f"p{i}")).id for i in range(5))
    repo.add(make_profile(tenant=T2, name="elsewhere"))
    seen, token, sizes = [], None, []
    while True:
        page = repo.list(T1, page_size=2, continuation_token=token)
        sizes.append(len(page.items))
        seen += [p.id for p in page.items]
        token = page.continuation_token
        if not token:
            break
    assert seen == ids and sizes == [2, 2, 1]
    assert [p.id for p in repo.list_all(T1)] == ids
    with pytest.raises(InvalidInput) as info:
        repo.list(T1, continuation_token="%%%not-a-token")
    assert info.value.errors[0].field == "continuationToken"


def test_profiles_ping(profiles):
    profiles.port.ping()
    down = profiles.down()
    assert_down(down.ping, profiles)
    assert_down(lambda: down.get(T1, str(uuid.uuid4())), profiles)


# --- SecretStore -------------------------------------------------------------------------------------

@pytest.fixture(params=KINDS)
def secrets(request):
    if request.param == "fake":
        return Subject(fakes.FakeSecretStore(), "fake", lambda: down_fake(fakes.FakeSecretStore()))
    from azure.keyvault.secrets import SecretClient

    from shared.adapters.http_session import build_credential, build_transport
    from shared.adapters.keyvault_secret_store import CLIENT_OPTIONS, KeyVaultSecretStore
    from shared.config import Settings

    sim = request.getfixturevalue("sim")
    settings = Settings.from_env(request.getfixturevalue("sim_settings"))
    session = request.getfixturevalue("sim_session")
    client = SecretClient(settings.key_vault_uri, build_credential(settings, session),
                          transport=build_transport(settings, session), **CLIENT_OPTIONS)
    store = KeyVaultSecretStore(client)

    def down():
        sim.control.add_fault("keyvault", status=503, retryAfter=0)
        return store

    return Subject(store, "adapter", down)


def test_secrets_versions_round_trip(secrets):
    store = secrets.port
    name = f"profile-{uuid.uuid4().hex[:12]}"
    first = store.set_secret(name, Password("first-value"), tags={"tenant": T1})
    second = store.set_secret(name, Password("second-value"))
    assert first.name == second.name == name and first.version and first.version != second.version
    assert store.get_secret(second).reveal() == "second-value"
    assert store.get_secret(first).reveal() == "first-value"


def test_secrets_missing(secrets):
    store = secrets.port
    name = f"profile-{uuid.uuid4().hex[:12]}"
    with pytest.raises(SecretMissing):
        store.get_secret(SecretRef(name, "0" * 32))
    ref = store.set_secret(name, Password("value"))
    with pytest.raises(SecretMissing):
        store.get_secret(SecretRef(name, "0" * 32))
    store.disable_version(ref)
    with pytest.raises(SecretMissing):  # a disabled orphan is missing, not an outage
        store.get_secret(ref)
    store.disable_version(SecretRef(f"nope-{uuid.uuid4().hex[:8]}", "0" * 32))  # no-op
    assert store.get_values(f"nope-{uuid.uuid4().hex[:8]}") == []


def test_secrets_values_newest_first_enabled_only_and_limited(secrets):
    store = secrets.port
    name = f"webhook-{uuid.uuid4().hex[:12]}"
    refs = [store.set_secret(name, Password(f"key-{i}")) for i in range(5)]
    assert store.get_values(name, limit=3) == ["key-4", "key-3", "key-2"]
    store.disable_version(refs[4])
    assert store.get_values(name) == ["key-3", "key-2", "key-1"]


def test_secrets_soft_delete_and_recover(secrets):
    store = secrets.port
    name = f"profile-{uuid.uuid4().hex[:12]}"
    ref = store.set_secret(name, Password("value"))
    store.delete_secret(name)
    store.delete_secret(name)  # idempotent
    with pytest.raises(SecretMissing):
        store.get_secret(ref)
    assert store.get_values(name) == []
    with pytest.raises(DependencyUnavailable):  # the vault refuses a deleted-but-recoverable name
        store.set_secret(name, Password("again"))
    store.recover_secret(name)
    store.recover_secret(name)  # not deleted any more: no-op
    assert store.get_secret(ref).reveal() == "value"
    store.delete_secret(f"never-{uuid.uuid4().hex[:8]}")


def test_secrets_ping(secrets):
    secrets.port.ping()
    down = secrets.down()
    assert_down(down.ping, secrets)
    assert_down(lambda: down.set_secret("x", Password("y")), secrets)


# --- CertificateStore ------------------------------------------------------------------------------

@pytest.fixture(params=KINDS)
def certificates(request):
    if request.param == "fake":
        return Subject(fakes.FakeCertificateStore(), "fake", lambda: down_fake(fakes.FakeCertificateStore()))
    from shared.bootstrap import certificate_store
    from shared.config import Settings

    sim = request.getfixturevalue("sim")
    store = certificate_store(Settings.from_env(request.getfixturevalue("sim_settings")),
                              request.getfixturevalue("sim_session"))

    def down():
        sim.control.add_fault("keyvault", status=503, retryAfter=0)
        return store

    return Subject(store, "adapter", down)


def _verify(info, digest: bytes, signature: bytes) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, utils

    x509.load_der_x509_certificate(info.cer).public_key().verify(
        signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def test_certificates_create_get_sign_and_versions(certificates):
    import hashlib

    store = certificates.port
    name = f"app-{uuid.uuid4().hex[:12]}"
    first = store.create_certificate(name, subject="CN=contract", validity_months=12)
    assert first.name == name and len(first.thumbprint) == 40 and first.not_after > first.not_before
    assert 360 <= (first.not_after - first.not_before).days <= 372
    assert store.get_certificate(name) == first and store.get_certificate(name, first.version) == first
    digest = hashlib.sha256(b"assertion").digest()
    _verify(first, digest, store.sign_digest(first.key_id, digest))
    second = store.create_certificate(name, subject="CN=contract", validity_months=12)
    assert second.version != first.version and second.thumbprint != first.thumbprint
    assert store.get_certificate(name) == second and store.get_certificate(name, first.version) == first
    _verify(first, digest, store.sign_digest(first.key_id, digest))  # the old version still signs (overlap)


def test_certificates_import_a_pfx_and_refuse_a_bad_one(certificates):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    key, cert = fakes.make_certificate("CN=imported", datetime.now(timezone.utc), timedelta(days=60))
    pfx = pkcs12.serialize_key_and_certificates(b"x", key, cert, None,
                                                serialization.BestAvailableEncryption(b"pfx-pw"))
    name = f"app-{uuid.uuid4().hex[:12]}"
    got = certificates.port.import_certificate(name, pfx, Password("pfx-pw"))
    assert got.thumbprint == cert.fingerprint(hashes.SHA1()).hex()
    with pytest.raises(InvalidInput) as info:
        certificates.port.import_certificate(f"app-{uuid.uuid4().hex[:12]}", pfx, Password("wrong"))
    assert [e.field for e in info.value.errors] == ["certificate.pfx"]
    with pytest.raises(InvalidInput):
        certificates.port.import_certificate(f"app-{uuid.uuid4().hex[:12]}", b"not a pfx", None)


def test_certificates_missing_and_soft_delete(certificates):
    store = certificates.port
    with pytest.raises(NotFound):
        store.get_certificate(f"app-{uuid.uuid4().hex[:12]}")
    name = f"app-{uuid.uuid4().hex[:12]}"
    store.create_certificate(name, subject="CN=contract", validity_months=1)
    store.delete_certificate(name)
    store.delete_certificate(name)  # idempotent
    store.delete_certificate(f"app-{uuid.uuid4().hex[:12]}")  # unknown: no-op
    with pytest.raises(NotFound):
        store.get_certificate(name)


def test_certificates_down(certificates):
    certificates.port.ping()
    down = certificates.down()
    assert_down(down.ping, certificates)
    assert_down(lambda: down.create_certificate("app-x", subject="CN=x", validity_months=1), certificates)


# --- ValidationHistory -------------------------------------------------------------------------------

@pytest.fixture(params=KINDS)
def history(request, dead_connection_string):
    from shared.adapters.table_validation_history import TableValidationHistory

    return table_subject(request, dead_connection_string, fakes.FakeHistory, TableValidationHistory)


def record(pid, at, *, tenant=T1, record_id=None, status="failed") -> ValidationRecord:
    return ValidationRecord(tenant_id=tenant, profile_id=pid, record_id=record_id or uuid.uuid4().hex, at=at,
                            status=status, message_id="MFA_ENABLED", outcome={"status": status},
                            reason="manual", correlation_id="c")


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def ids(records) -> list[str]:
    return [r.record_id for r in records]


def test_history_newest_first_limited_and_per_profile(history):
    h = history.port
    pid, other = str(uuid.uuid4()), str(uuid.uuid4())
    recs = [record(pid, NOW + timedelta(minutes=i)) for i in range(5)]
    for i, r in enumerate(recs):
        h.add(r, publish=i % 2 == 0)  # outbox markers between the rows must not show in the list
    h.add(record(other, NOW), publish=True)
    assert ids(h.list(T1, pid)) == ids(reversed(recs))
    assert ids(h.list(T1, pid, limit=2)) == [recs[4].record_id, recs[3].record_id]
    assert h.list(T1, pid, limit=0) == [] and h.list(T2, pid) == []
    assert h.list(T1, pid)[0] == recs[4]


def test_history_outbox_holds_what_is_to_publish_until_marked(history):
    h = history.port
    pid = str(uuid.uuid4())
    quiet, loud = record(pid, NOW), record(pid, NOW + timedelta(seconds=1))
    h.add(quiet, publish=False)
    h.add(loud, publish=True)
    assert ids(h.unpublished()) == [loud.record_id]
    h.mark_published(loud)
    h.mark_published(loud)  # idempotent
    h.mark_published(quiet)  # never had an entry: no-op
    assert h.unpublished() == [] and ids(h.list(T1, pid)) == [loud.record_id, quiet.record_id]


def test_history_add_is_idempotent(history):
    h = history.port
    pid = str(uuid.uuid4())
    r = record(pid, NOW, record_id="job1-" + pid)
    h.add(r, publish=True)
    h.add(replace(r, status="passed"), publish=True)  # a retry of the same record replaces it
    assert [(x.record_id, x.status) for x in h.list(T1, pid)] == [(r.record_id, "passed")]
    assert ids(h.unpublished()) == [r.record_id]


def test_history_unpublished_limit(history):
    h = history.port
    recs = [record(str(uuid.uuid4()), NOW + timedelta(seconds=i)) for i in range(4)]
    for r in recs:
        h.add(r, publish=True)
    first = h.unpublished(limit=3)
    assert len(first) == 3 and set(ids(first)) <= set(ids(recs))
    assert h.unpublished(limit=0) == []
    for r in first:
        h.mark_published(r)
    assert ids(h.unpublished(limit=3)) == list(set(ids(recs)) - set(ids(first)))


def test_history_ping(history):
    history.port.ping()
    down = history.down()
    assert_down(down.ping, history)
    assert_down(lambda: down.add(record("p", NOW), publish=True), history)


# --- OutcomePublisher --------------------------------------------------------------------------------

@pytest.fixture(params=KINDS)
def publisher(request, dead_connection_string):
    from shared.adapters.queue_outcome_publisher import QueueOutcomePublisher

    if request.param == "fake":
        fake = fakes.FakePublisher()
        return Subject(fake, "fake", lambda: down_fake(fakes.FakePublisher()),
                       visible=lambda: [r.record_id for r in fake.published])
    queue = request.getfixturevalue("new_queue")("outcomes")
    return Subject(QueueOutcomePublisher(queue), "adapter",
                   lambda: QueueOutcomePublisher(dead_queue(dead_connection_string)),
                   visible=lambda: [json.loads(text)["id"] for text in peek_all(queue)])


def test_publisher_one_event_per_publish_with_the_record_id(publisher):
    r = record(str(uuid.uuid4()), NOW)
    publisher.port.publish(r)
    publisher.port.publish(r)  # a re-publication: a second event with the same id, for consumers to drop
    assert publisher.visible() == [r.record_id, r.record_id]


def test_publisher_ping(publisher):
    publisher.port.ping()
    down = publisher.down()
    assert_down(down.ping, publisher)
    assert_down(lambda: down.publish(record("p", NOW)), publisher)


# --- WorkQueue --------------------------------------------------------------------------------------

@pytest.fixture(params=KINDS)
def work(request, dead_connection_string):
    from shared.adapters.queue_work_queue import QueueWorkQueue

    if request.param == "fake":
        fake = fakes.FakeWorkQueue()
        return Subject(fake, "fake", lambda: down_fake(fakes.FakeWorkQueue()),
                       visible=lambda: [m for m, delay in fake.sent if delay == 0], poison=lambda: fake.poison)
    make = request.getfixturevalue("new_queue")
    queue, poison = make("work"), make("work-poison")
    return Subject(QueueWorkQueue(queue, poison), "adapter",
                   lambda: QueueWorkQueue(dead_queue(dead_connection_string)),
                   visible=lambda: [WorkMessage.from_json(t) for t in peek_all(queue)],
                   poison=lambda: peek_all(poison))


def work_message(i=0) -> WorkMessage:
    return WorkMessage(T1, str(uuid.UUID(int=i)), f"job-{i}", Reason.BATCH, "c")


def test_work_send_now_and_later(work):
    now, later, negative = work_message(1), work_message(2), work_message(3)
    work.port.send(now)
    work.port.send(later, delay_seconds=60)
    work.port.send(negative, delay_seconds=-5)  # counts as no delay
    assert work.visible() == [now, negative]


def test_work_send_many_counts_and_sends_every_pair(work):
    pairs = [(work_message(i), 0) for i in range(10)] + [(work_message(99), 300)]
    assert work.port.send_many(iter(pairs)) == 11
    assert sorted(m.profile_id for m in work.visible()) == sorted(m.profile_id for m, _ in pairs[:10])
    assert work.port.send_many([]) == 0


def test_work_backlog_counts_visible_and_delayed_messages(work):
    assert work.port.backlog() == 0
    work.port.send_many([(work_message(i), 0) for i in range(3)] + [(work_message(9), 300)])
    assert work.port.backlog() == 4
    assert_down(work.down().backlog, work)


def test_work_poison(work):
    work.port.send_to_poison("not json")
    assert work.poison() == ["not json"] and work.visible() == []


def test_work_ping(work):
    work.port.ping()
    down = work.down()
    assert_down(down.ping, work)
    assert_down(lambda: down.send(work_message()), work)


# --- JobRepository ----------------------------------------------------------------------------------

@pytest.fixture(params=KINDS)
def jobs(request, dead_connection_string):
    from shared.adapters.table_job_repository import TableJobRepository

    return table_subject(request, dead_connection_string, fakes.FakeJobRepository, TableJobRepository)


def make_job(tenant=T1) -> Job:
    return Job(id=str(uuid.uuid4()), tenant_id=tenant, reason=Reason.BATCH, selection={"profileIds": 3}, total=3,
               created_at=NOW, correlation_id="c")


def test_jobs_round_trip_not_found_and_conflict(jobs):
    repo = jobs.port
    job = make_job()
    repo.add(job)
    assert repo.get(T1, job.id) == job
    with pytest.raises(PreconditionFailed):
        repo.add(job)
    with pytest.raises(NotFound):
        repo.get(T2, job.id)
    with pytest.raises(NotFound):
        repo.get(T1, str(uuid.uuid4()))


def test_jobs_mark_started_once(jobs):
    repo = jobs.port
    job = make_job()
    repo.add(job)
    repo.mark_started(T1, job.id, NOW + timedelta(seconds=1))
    repo.mark_started(T1, job.id, NOW + timedelta(seconds=9))  # the first writer wins
    assert repo.get(T1, job.id).started_at == NOW + timedelta(seconds=1)
    repo.mark_started(T1, str(uuid.uuid4()), NOW)  # a missing job: no-op


def test_jobs_items_claim_once_and_etags(jobs):
    repo = jobs.port
    job_id = str(uuid.uuid4())
    item = JobItem(job_id, "p1")
    until = NOW + timedelta(minutes=2)
    etag = repo.create_item(item, claimed_until=until)
    assert etag
    with pytest.raises(PreconditionFailed):  # a second copy of the message cannot claim it
        repo.create_item(item)
    assert repo.get_item(job_id, "p1") == (item, until, etag)
    done = replace(item, state=ItemState.FAILED, message_id="MFA_ENABLED", detail="why", finished_at=NOW)
    new = repo.save_item(done, etag=etag)
    assert new != etag and repo.get_item(job_id, "p1") == (done, None, new)
    with pytest.raises(PreconditionFailed):
        repo.save_item(item, etag=etag)  # stale
    assert repo.save_item(replace(done, throttled=1), etag="*")  # any version
    with pytest.raises(PreconditionFailed):
        repo.save_item(JobItem(job_id, "never-claimed"), etag="*")
    with pytest.raises(NotFound):
        repo.get_item(job_id, "never-claimed")


def test_jobs_items_in_profile_order_without_detail(jobs):
    repo = jobs.port
    job_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    for pid in ("c", "a", "b"):
        repo.create_item(JobItem(job_id, pid, ItemState.ERROR, "X", detail="long text", finished_at=NOW))
    repo.create_item(JobItem(other, "z"))
    got = repo.items(job_id)
    assert [i.profile_id for i in got] == ["a", "b", "c"]
    assert got[0] == JobItem(job_id, "a", ItemState.ERROR, "X", detail="", finished_at=NOW)
    assert repo.items(str(uuid.uuid4())) == []


def test_jobs_items_and_tally_are_written_together_or_not_at_all(jobs):
    from shared.domain.jobs import JobTally

    repo, job_id = jobs.port, str(uuid.uuid4())
    claimed = JobItem(job_id, "p1")
    etag = repo.create_item(claimed)
    done = replace(claimed, state=ItemState.FAILED, message_id="MFA_ENABLED", finished_at=NOW)
    fresh = [JobItem(job_id, f"p{i}", ItemState.PASSED, finished_at=NOW) for i in (2, 3)]
    tally = JobTally("shard-a")
    for before, after in [(claimed, done), (None, fresh[0]), (None, fresh[1])]:
        tally = tally.counting(before, after, NOW)
    stale = etag + "stale" if jobs.kind == "fake" else 'W/"datetime\'2000-01-01T00%3A00%3A00Z\'"'
    with pytest.raises(PreconditionFailed):  # one stale ETag among inserts: no item, no tally
        repo.write_items(job_id, [(fresh[0], None), (done, stale), (fresh[1], None)], tally)
    assert repo.tallies(job_id) == [] and [i.profile_id for i in repo.items(job_id)] == ["p1"]
    assert repo.get_item(job_id, "p1")[0].state is ItemState.PENDING
    etags = repo.write_items(job_id, [(fresh[0], None), (done, etag), (fresh[1], None)], tally)
    assert len(set(etags)) == 3 and repo.get_item(job_id, "p1")[2] == etags[1]
    assert repo.tallies(job_id) == [tally] and repo.get_item(job_id, "p1")[0] == done
    assert [i.profile_id for i in repo.items(job_id)] == ["p1", "p2", "p3"]  # tallies are not items
    with pytest.raises(PreconditionFailed):  # an insert of an existing item: no tally either
        repo.write_items(job_id, [(replace(done, profile_id="p2"), None)], replace(tally, done=99))
    assert repo.tallies(job_id) == [tally]
    repo.write_items(job_id, [(replace(done, profile_id="p3"), "*")], replace(tally, done=4))  # "*": any ETag
    assert repo.tallies(job_id)[0].done == 4


def test_jobs_ping(jobs):
    jobs.port.ping()
    down = jobs.down()
    assert_down(down.ping, jobs)
    assert_down(lambda: down.get(T1, "j"), jobs)


# --- PoolRepository ---------------------------------------------------------------------------------

@pytest.fixture(params=KINDS)
def pool(request, dead_connection_string):
    from shared.adapters.table_pool_repository import TablePoolRepository

    return table_subject(request, dead_connection_string, fakes.FakePoolRepository, TablePoolRepository)


def test_pool_members_in_order_and_idempotent_add_remove(pool):
    repo = pool.port
    for pid in ("c", "a", "b"):
        repo.add_member(T1, pid)
    repo.add_member(T2, "z")
    members = repo.members(T1)
    assert [m.profile_id for m in members] == ["a", "b", "c"]
    assert all(m.etag and m.lease_id is None and m.leased_until is None for m in members)
    leased = repo.replace_member(T1, members[0].lease("lease-1", NOW, 60))
    repo.add_member(T1, "a")  # already a member: keeps its lease
    assert repo.members(T1)[0] == leased
    repo.remove_member(T1, "b")
    repo.remove_member(T1, "b")  # idempotent
    assert [m.profile_id for m in repo.members(T1)] == ["a", "c"] and repo.members("nobody") == []


def test_pool_replace_is_conditional(pool):
    repo = pool.port
    repo.add_member(T1, "a")
    member, = repo.members(T1)
    taken = repo.replace_member(T1, member.lease("lease-1", NOW, 60))
    assert taken.etag and taken.etag != member.etag
    assert (taken.lease_id, taken.leased_until) == ("lease-1", NOW + timedelta(seconds=60))
    with pytest.raises(PreconditionFailed):  # a second request that read the same version loses
        repo.replace_member(T1, member.lease("lease-2", NOW, 60))
    assert repo.members(T1) == [taken]
    repo.remove_member(T1, "a")
    with pytest.raises(PreconditionFailed):
        repo.replace_member(T1, taken.release(NOW))


def test_pool_ping(pool):
    pool.port.ping()
    down = pool.down()
    assert_down(down.ping, pool)
    assert_down(lambda: down.members(T1), pool)


# --- WebhookEventLog --------------------------------------------------------------------------------

@pytest.fixture(params=KINDS)
def events(request, dead_connection_string):
    from shared.adapters.table_webhook_event_log import TableWebhookEventLog

    return table_subject(request, dead_connection_string, fakes.FakeWebhookEventLog, TableWebhookEventLog)


def test_events_record_once_per_portal_and_forget(events):
    log = events.port
    event_id = "evt/1?#odd"  # portal-chosen: characters a RowKey forbids
    assert log.try_record("p1", event_id, event_type="t") is True
    assert log.try_record("p1", event_id, event_type="t") is False
    assert log.try_record("p2", event_id, event_type="t") is True
    log.forget("p1", event_id)
    log.forget("p1", event_id)  # idempotent
    log.forget("p1", "never-seen")
    assert log.try_record("p1", event_id, event_type="t") is True


def test_events_one_winner_under_concurrency(events):
    log = events.port
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: log.try_record("p1", "same", event_type="t"), range(16)))
    assert results.count(True) == 1


def test_events_ping(events):
    events.port.ping()
    down = events.down()
    assert_down(down.ping, events)
    assert_down(lambda: down.try_record("p", "e", event_type="t"), events)
