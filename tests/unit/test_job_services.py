"""The batch worker over fakes: exact counts under redelivery, throttling, poison, scheduled changes."""
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shared.domain.errors import PreconditionFailed
from shared.domain.jobs import ItemState, JobItem, Reason, WorkMessage
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
    """Let the worker expand the job's fan-out chunks into work groups, and leave in the queue the
    per-profile messages the groups stand for (``JobServices.members``; groups have tests of their own)."""
    from shared.domain.jobs import FanoutMessage

    chunks = [m for m, _ in jobs.work.sent if isinstance(m, FanoutMessage)]
    jobs.work.sent = [(m, d) for m, d in jobs.work.sent if not isinstance(m, FanoutMessage)]
    for chunk in chunks:
        assert jobs.process(chunk.to_json()) == "fannedOut"
    as_members(jobs)


def as_members(jobs):
    """Replace the work groups in the queue by the per-profile messages they stand for."""
    from shared.domain.jobs import WorkGroup

    jobs.work.sent = [(one, d) for m, d in jobs.work.sent
                      for one in (m.messages() if isinstance(m, WorkGroup) else [m])]


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



# --- first deliveries without a claim, and the group commit of final states -----------------------

class CountingJobs(FakeJobRepository):
    """Counts claims (``create_item``); :meth:`hold` keeps the next ``write_items`` in flight until
    ``gate`` is set."""

    def __init__(self):
        super().__init__()
        self.claims, self.gate, self.entered, self._armed = 0, threading.Event(), threading.Event(), False

    def hold(self):
        self._armed = True

    def create_item(self, item, *, claimed_until=None):
        self.claims += 1
        return super().create_item(item, claimed_until=claimed_until)

    def write_items(self, job_id, writes, tally):
        if self._armed:
            self._armed = False
            self.entered.set()
            assert self.gate.wait(10)
        return super().write_items(job_id, writes, tally)


@pytest.fixture
def counted(world):
    jobs, probe, ids = world
    jobs.jobs = CountingJobs()
    return jobs, probe, ids


def test_a_first_delivery_validates_without_a_claim_and_a_redelivery_counts_nothing(counted):
    jobs, probe, ids = counted
    job = jobs.create_job(T, Selection(all=True), correlation_id="c")
    chunk, _ = jobs.work.sent.pop(0)
    assert jobs.process(chunk.to_json(), dequeue_count=1) == "fannedOut"
    as_members(jobs)
    messages = [m for m, _ in jobs.work.sent]
    assert not any(m.claim for m in messages)
    for m in messages:
        assert jobs.process(m.to_json(), dequeue_count=1) == "passed"
    assert jobs.jobs.claims == 0 and jobs.jobs.writes == [1, 1, 1]  # the final state is the insert
    for m in messages:  # the host delivers each again (its visibility ran out): no second count
        assert jobs.process(m.to_json(), dequeue_count=2) == "duplicate"
    summary = status(jobs, job)
    assert (summary["done"], summary["passed"], summary["state"]) == (3, 3, "completed")
    assert probe.methods().count("sign_in_modern") == 3


def test_copies_that_may_exist_claim_first(counted):
    jobs, probe, ids = counted
    jobs.create_job(T, Selection(profile_ids=tuple(ids[:1])), correlation_id="c")
    chunk, _ = jobs.work.sent.pop(0)
    assert jobs.process(chunk.to_json(), dequeue_count=2) == "fannedOut"  # a redelivered chunk
    as_members(jobs)
    (msg, _), = jobs.work.sent
    assert msg.claim and WorkMessage.from_json(msg.to_json()).claim
    jobs.work.sent.clear()
    jobs.jobs.create_item(JobItem(msg.job_id, msg.profile_id), claimed_until=Clock.now + timedelta(seconds=60))
    first = replace(msg, claim=False)
    assert jobs.process(first.to_json(), dequeue_count=2) == "busy"
    (again, delay), = jobs.work.sent
    assert again.claim and delay > 0  # the copy put back claims too, though its dequeue count is 1
    assert jobs.process(again.to_json(), dequeue_count=1) == "busy"
    assert jobs.process(first.to_json(), dequeue_count=None) == "busy"  # unknown count: claim first
    assert probe.methods().count("sign_in_modern") == 0


def test_an_unclaimed_copy_that_finds_the_item_claimed_finishes_it_once(counted):
    jobs, probe, ids = counted
    job = jobs.create_job(T, Selection(profile_ids=tuple(ids[:1])), correlation_id="c")
    chunk, _ = jobs.work.sent.pop(0)
    jobs.process(chunk.to_json(), dequeue_count=1)
    as_members(jobs)
    (msg, _), = jobs.work.sent
    # a claimed copy is running elsewhere (its claim is the item) while this first delivery ends
    claim_etag = jobs.jobs.create_item(JobItem(msg.job_id, msg.profile_id),
                                       claimed_until=Clock.now + timedelta(seconds=60))
    assert jobs.process(msg.to_json(), dequeue_count=1) == "passed"
    assert status(jobs, job)["done"] == 1
    with pytest.raises(PreconditionFailed):  # the other copy's final write: its claim is gone
        jobs._finish(JobItem(msg.job_id, msg.profile_id), claim_etag, ItemState.FAILED, "X", "")
    assert jobs.process(msg.to_json(), dequeue_count=2) == "duplicate"
    # a second first delivery (a duplicate send): the profile says this job's outcome is stored,
    # so it claims first and finds the item final, without signing in again
    assert jobs.process(msg.to_json(), dequeue_count=1) == "duplicate"
    assert (status(jobs, job)["done"], status(jobs, job)["passed"]) == (1, 1)
    assert probe.methods().count("sign_in_modern") == 1


def test_two_unclaimed_copies_in_flight_at_once_count_once(counted):
    """The race the claim-less first delivery leaves: both copies validate (neither has stored yet),
    and the second final write finds the item final and counts nothing."""
    jobs, probe, ids = counted
    job = jobs.create_job(T, Selection(profile_ids=tuple(ids[:1])), correlation_id="c")
    chunk, _ = jobs.work.sent.pop(0)
    jobs.process(chunk.to_json(), dequeue_count=1)
    as_members(jobs)
    (msg, _), = jobs.work.sent
    stored = jobs.profiles.get(T, msg.profile_id)
    assert jobs.process(msg.to_json(), dequeue_count=1) == "passed"
    real_get = jobs.profiles.get
    jobs.profiles.get = lambda tenant, pid: stored  # the copy read the profile before the first stored
    assert jobs.process(msg.to_json(), dequeue_count=1) == "duplicate"
    jobs.profiles.get = real_get
    assert (status(jobs, job)["done"], status(jobs, job)["passed"]) == (1, 1)
    assert probe.methods().count("sign_in_modern") == 2


def finish_all(jobs, writes):
    """Each (before, after, etag) written by its own thread, as concurrent validations end; the
    first write's transaction is held in flight until every other write waits for the next one."""
    from tests.waiting import wait_until

    errors = {}

    def write(i, before, after, etag):
        try:
            jobs._save_counted(before, after, etag)
        except Exception as exc:  # noqa: BLE001 - the test looks at which writes failed
            errors[i] = exc

    jobs.jobs.hold()
    threads = [threading.Thread(target=write, args=(i, *w)) for i, w in enumerate(writes)]
    threads[0].start()
    assert jobs.jobs.entered.wait(10)
    for t in threads[1:]:
        t.start()
    wait_until(lambda: len(jobs._pending.get(writes[0][1].job_id, [])) == len(writes) - 1, timeout=10)
    jobs.jobs.gate.set()
    for t in threads:
        t.join(10)
    return errors


def test_final_states_that_arrive_during_a_commit_go_together_in_the_next(counted):
    jobs, _, _ = counted
    done = [JobItem("job-1", f"p{i}", ItemState.FAILED if i % 3 == 0 else ItemState.PASSED,
                    "X" if i % 3 == 0 else None, finished_at=Clock.now) for i in range(12)]
    assert finish_all(jobs, [(None, d, None) for d in done]) == {}
    assert jobs.jobs.writes == [1, 11]  # the eleven that waited went in one transaction
    (tally,) = jobs.jobs.tallies("job-1")
    assert (tally.done, tally.passed, tally.failed, tally.by_message_id) == (12, 8, 4, {"X": 4})


def test_a_leader_waits_briefly_for_the_jobs_other_running_validations(counted):
    """Members of a work group finish a few milliseconds apart: the first to finish waits for the
    others still running in this process (up to COMMIT_LINGER_SECONDS), so all share one write."""
    from tests.waiting import wait_until

    jobs, _, _ = counted
    jobs.create_job(T, Selection(all=True), correlation_id="c")
    fan_out(jobs)
    members = [m for m, _ in jobs.work.sent]
    order = {m.profile_id: n for n, m in enumerate(members)}
    real_run, started = jobs.runs.run, threading.Barrier(len(members), timeout=5)

    def ended(job_id):  # final states written or waiting for a write
        return sum(jobs.jobs.writes) + len(jobs._pending.get(job_id, ()))

    def staggered(profile, **kwargs):  # all run at once; each ends once the one before has ended
        started.wait()
        outcome = real_run(profile, **kwargs)
        wait_until(lambda: ended(members[0].job_id) >= order[profile.id], timeout=5, interval=0.001)
        return outcome

    jobs.runs.run = staggered
    threads = [threading.Thread(target=jobs.process, args=(m.to_json(),), kwargs={"dequeue_count": 1})
               for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(members) == 3 and jobs.jobs.writes == [3]
    assert jobs._running == {}  # nothing left counted as running


def test_a_stale_write_in_a_group_fails_alone(counted):
    jobs, _, _ = counted
    claimed = JobItem("job-1", "p1")
    etag = jobs.jobs.create_item(claimed)
    done = replace(claimed, state=ItemState.PASSED, finished_at=Clock.now)
    others = [JobItem("job-1", f"q{i}", ItemState.PASSED, finished_at=Clock.now) for i in range(3)]
    errors = finish_all(jobs, [(None, others[0], None), (claimed, done, etag + "stale"),
                               *[(None, o, None) for o in others[1:]]])
    assert list(errors) == [1] and isinstance(errors[1], PreconditionFailed)
    (tally,) = jobs.jobs.tallies("job-1")
    assert tally.done == 3 and jobs.jobs.get_item("job-1", "p1")[0].state is ItemState.PENDING
    assert jobs.jobs.writes == [1, 1, 1]  # the group of three failed as a whole, then each alone


def test_a_chunk_of_an_unknown_job_is_dropped_and_sends_nothing(world):
    from shared.domain.jobs import FanoutMessage

    jobs, probe, ids = world
    chunk = FanoutMessage(T, "no-such-job", tuple(ids), Reason.BATCH, "c")
    assert jobs.process(chunk.to_json(), dequeue_count=1) == "unknownJob"
    assert jobs.work.sent == [] and probe.methods() == []


def test_a_chunk_waits_while_the_queue_is_full_and_expands_once_it_is_not(world):
    from shared.domain.jobs import FanoutMessage
    from shared.services.jobs import FANOUT_BACKLOG, FANOUT_DEFER_SECONDS

    jobs, probe, ids = world
    jobs.create_job(T, Selection(profile_ids=tuple(ids)), correlation_id="c")
    chunk, _ = jobs.work.sent.pop(0)
    jobs.work.waiting = FANOUT_BACKLOG + 1  # another job's messages fill the queue
    assert jobs.process(chunk.to_json(), dequeue_count=1) == "deferred"
    (again, delay), = jobs.work.sent
    assert isinstance(again, FanoutMessage) and again.profile_ids == chunk.profile_ids
    assert delay == FANOUT_DEFER_SECONDS
    jobs.work.sent.clear()
    assert jobs.process(chunk.to_json(), dequeue_count=2) == "fannedOut"  # a redelivery never waits
    jobs.work.sent.clear()
    jobs.work.waiting = FANOUT_BACKLOG
    assert jobs.process(again.to_json(), dequeue_count=1) == "fannedOut"
    as_members(jobs)
    assert sorted(m.profile_id for m, _ in jobs.work.sent) == sorted(ids)
    assert not any(m.claim for m, _ in jobs.work.sent)  # the deferred chunk had never been expanded


def test_a_status_read_reads_the_job_row_and_its_tallies_at_the_same_time(world):
    """Each read waits until the other has started (a barrier): one after the other would time out."""
    jobs, probe, ids = world
    job = jobs.create_job(T, Selection(all=True), correlation_id="c")
    fan_out(jobs)
    run_all(jobs)
    both = threading.Barrier(2, timeout=5)
    real_get, real_tallies = jobs.jobs.get, jobs.jobs.tallies
    jobs.jobs.get = lambda tenant, job_id: (both.wait(), real_get(tenant, job_id))[1]
    jobs.jobs.tallies = lambda job_id: (both.wait(), real_tallies(job_id))[1]
    assert status(jobs, job)["done"] == 3


def test_a_status_read_of_another_tenants_job_is_not_found(world):
    from shared.domain.errors import NotFound

    jobs, probe, ids = world
    job = jobs.create_job(T, Selection(all=True), correlation_id="c")
    with pytest.raises(NotFound):
        jobs.get_job("22222222-2222-4222-8222-222222222222", job.job.id)



def test_chunks_delivered_together_expand_one_at_a_time_and_each_sees_the_last(world):
    """Chunks wait behind the work groups of the chunk before them, so a process gets them in one
    batch: each must see what the others sent, or all expand into an empty-looking queue."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.domain.jobs import FANOUT_CHUNK, WORK_GROUP, FanoutMessage
    from shared.services.jobs import FANOUT_BACKLOG

    jobs, probe, ids = world
    jobs.create_job(T, Selection(profile_ids=tuple(f"p{i}" for i in range(6 * FANOUT_CHUNK))), correlation_id="c")
    chunks = [m for m, _ in jobs.work.sent]
    jobs.work.sent.clear()
    real_backlog = jobs.work.backlog

    def backlog():  # the count, then a round trip's time: every unlocked chunk would look before any sends
        import time

        waiting = real_backlog()
        time.sleep(0.05)
        return waiting

    jobs.work.backlog = backlog
    with ThreadPoolExecutor(len(chunks)) as pool:
        results = list(pool.map(lambda c: jobs.process(c.to_json(), dequeue_count=1), chunks))
    expanded = results.count("fannedOut")
    groups = [m for m, _ in jobs.work.sent if not isinstance(m, FanoutMessage)]
    per_chunk = -(-FANOUT_CHUNK // WORK_GROUP)
    assert expanded == -(-(FANOUT_BACKLOG + 1) // per_chunk) and results.count("deferred") == 6 - expanded
    assert len(groups) <= FANOUT_BACKLOG + per_chunk
