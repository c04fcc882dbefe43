"""The batch worker over fakes: exact counts under redelivery, throttling, poison, scheduled changes."""
from datetime import datetime, timedelta, timezone

import pytest

from shared.domain.jobs import Reason, WorkMessage
from shared.domain.profile import LastValidation
from shared.services.jobs import JobServices
from shared.services.profiles import ProfileServices
from shared.contract.jobs import job_out
from shared.domain.jobs import Selection
from shared.domain.profile import profile_input
from shared.services.validation import ValidationService
from shared.cloud import endpoints_for
from tests.fakes import (FakeHistory, FakeJobRepository, FakeProfileRepository, FakePublisher, FakeSecretStore,
                         FakeWorkQueue)
from tests.fakes_validation import FakeAccountProbe, failed

T = "11111111-1111-4111-8111-111111111111"


class Clock:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.now


@pytest.fixture
def world():
    profiles, secrets = FakeProfileRepository(), FakeSecretStore()
    probe = FakeAccountProbe()
    runs = ValidationService(profiles, secrets, FakeHistory(), FakePublisher(), probe, ("203.0.113.0/28",))
    jobs = JobServices(FakeJobRepository(), profiles, runs, FakeWorkQueue(), Clock())
    created = ProfileServices(profiles, secrets, endpoints_for("public"))
    ids = [created.create_profile(T, profile_input({"name": f"p{i}", "username": f"u{i}@contoso.onmicrosoft.com",
                                                    "password": "Secret-1!"}), correlation_id="c").profile.id
           for i in range(3)]
    return jobs, probe, ids


def status(jobs, job):
    """The job as a portal polls it."""
    return job_out(jobs.get_job(T, job.job.id), Clock.now).dump()


def fan_out(jobs):
    """Let the worker expand the job's fan-out chunks into per-profile messages."""
    from shared.domain.jobs import FanoutMessage

    chunks = [m for m, _ in jobs.work.sent if isinstance(m, FanoutMessage)]
    jobs.work.sent = [(m, d) for m, d in jobs.work.sent if not isinstance(m, FanoutMessage)]
    for chunk in chunks:
        assert jobs.process(chunk.to_json()) == "fannedOut"


def run_all(jobs):
    """Deliver every queued message once (like the host would), including re-sent copies."""
    while jobs.work.sent:
        msg, _ = jobs.work.sent.pop(0)
        jobs.process(msg.to_json())


def test_job_counts_exact_and_redelivery_is_a_no_op(world):
    jobs, probe, ids = world
    job = jobs.create_job(T, Selection(all=True), correlation_id="c")
    fan_out(jobs)
    messages = [m for m, _ in jobs.work.sent]
    run_all(jobs)
    for m in messages:  # every message delivered a second time
        assert jobs.process(m.to_json()) == "duplicate"
    summary = status(jobs, job)
    assert (summary["total"], summary["done"], summary["passed"], summary["state"]) == (3, 3, 3, "completed")
    assert len(jobs.runs.publisher.published) == 3 and len(jobs.runs.history.records) == 3
    assert probe.methods().count("sign_in_modern") == 3


def test_throttled_message_goes_back_with_retry_after_and_is_not_failed(world):
    jobs, probe, ids = world
    probe.answer("sign_in_modern", failed("sign_in_modern", None, status=429, retry_after=42))
    job = jobs.create_job(T, Selection(profile_ids=tuple([ids[0]])), correlation_id="c")
    fan_out(jobs)
    msg, _ = jobs.work.sent.pop(0)
    assert jobs.process(msg.to_json()) == "throttled"
    (copy, delay), = jobs.work.sent
    assert delay == 42 and copy.throttled == 1
    assert status(jobs, job)["throttled"] == 1 and status(jobs, job)["done"] == 0
    run_all(jobs)
    assert status(jobs, job)["passed"] == 1


def test_poison_marks_item_as_error_and_unreadable_goes_to_poison(world):
    jobs, probe, ids = world
    job = jobs.create_job(T, Selection(profile_ids=tuple(ids[:2])), correlation_id="c")
    fan_out(jobs)
    first, _ = jobs.work.sent.pop(0)
    assert jobs.process_poison(first.to_json()) == "error"
    run_all(jobs)
    summary = status(jobs, job)
    assert summary["state"] == "completedWithErrors" and summary["errors"] == 1 and summary["passed"] == 1
    assert summary["failures"] == [{"messageId": "POISON_MESSAGE", "count": 1, "profileIds": [first.profile_id]}]
    assert jobs.process("not json") == "poisoned" and jobs.work.poison == ["not json"]


def test_a_copy_arriving_while_claimed_waits(world):
    jobs, probe, ids = world
    jobs.create_job(T, Selection(profile_ids=tuple([ids[0]])), correlation_id="c")
    fan_out(jobs)
    msg, _ = jobs.work.sent.pop(0)
    from shared.domain.jobs import JobItem

    jobs.jobs.create_item(JobItem(msg.job_id, msg.profile_id), claimed_until=Clock.now + timedelta(seconds=60))
    assert jobs.process(msg.to_json()) == "busy"
    assert jobs.work.sent[0][1] > 0


def test_scheduled_run_publishes_only_changes(world):
    jobs, probe, ids = world
    profiles = jobs.profiles
    failing = profiles.get(T, ids[0])
    profiles.record_validation(failing, LastValidation("failed", "CHECK_MFA_OR_APP_PASSWORD",
                                                       Clock.now - timedelta(days=2)))
    same = profiles.get(T, ids[1])
    profiles.record_validation(same, LastValidation("passed", None, Clock.now - timedelta(days=2)))
    fresh = profiles.get(T, ids[2])
    profiles.record_validation(fresh, LastValidation("passed", None, Clock.now - timedelta(hours=1)))
    probe.answer("sign_in_modern", failed("sign_in_modern", "AADSTS50126", status=400),
                 failed("sign_in_modern", "AADSTS50126", status=400))
    jobs.revalidation_max_age_hours, jobs.revalidation_spread_seconds = 24, 600
    created = jobs.schedule_revalidation(correlation_id="c")
    assert [j.total for j in created] == [2]
    fan_out(jobs)
    assert sorted(d for _, d in jobs.work.sent) == [0, 300]
    assert all(m.reason is Reason.SCHEDULED for m, _ in jobs.work.sent)
    run_all(jobs)
    # ids[0] failed the same way again: not news; ids[1] started failing: news. Both are in history.
    published = [(r.profile_id, r.message_id) for r in jobs.runs.publisher.published]
    assert published == [(ids[1], "CHECK_MFA_OR_APP_PASSWORD")]
    assert sorted(r.profile_id for r in jobs.runs.history.records) == sorted(ids[:2])


def test_a_failed_attempt_releases_its_claim_so_the_host_can_retry(world):
    jobs, probe, ids = world
    jobs.create_job(T, Selection(profile_ids=tuple([ids[0]])), correlation_id="c")
    fan_out(jobs)
    msg, _ = jobs.work.sent.pop(0)
    jobs.runs.secrets.down = True
    with pytest.raises(Exception):
        jobs.process(msg.to_json())
    _, claimed_until, _ = jobs.jobs.get_item(msg.job_id, msg.profile_id)
    assert claimed_until is None
    jobs.runs.secrets.down = False
    assert jobs.process(msg.to_json()) == "passed"


def test_a_missing_secret_is_an_error_item_not_a_retry(world):
    jobs, probe, ids = world
    job = jobs.create_job(T, Selection(profile_ids=tuple([ids[0]])), correlation_id="c")
    profile = jobs.profiles.get(T, ids[0])
    del jobs.runs.secrets.versions[profile.secret.name]

    def missing(ref):
        from shared.domain.errors import SecretMissing

        raise SecretMissing(ref.name)

    jobs.runs.secrets.get_secret = missing
    run_all(jobs)
    assert status(jobs, job)["byMessageId"] == {"SECRET_MISSING": 1}


def test_fanout_chunks_and_a_poisoned_chunk_marks_its_profiles(world):
    from shared.domain.jobs import FANOUT_CHUNK, FanoutMessage

    jobs, probe, ids = world
    many = [str(__import__("uuid").uuid4()) for _ in range(FANOUT_CHUNK + 10)]
    job = jobs.create_job(T, Selection(profile_ids=tuple(many)), correlation_id="c")
    chunks = [m for m, _ in jobs.work.sent]
    assert [len(c.profile_ids) for c in chunks] == [FANOUT_CHUNK, 10] and all(isinstance(c, FanoutMessage) for c in chunks)
    assert jobs.process_poison(chunks[1].to_json()) == "error"
    assert status(jobs, job)["errors"] == 10
