"""Work groups: a job's profiles go out eight to a message, and the worker validates a group's
profiles at the same time, each by the rules of a message of its own."""
import threading
from dataclasses import dataclass, field

from azure.functions.queue import QueueMessage
import pytest

from shared.domain.errors import DependencyUnavailable
from shared.domain.jobs import WORK_GROUP, FanoutMessage, Reason, WorkGroup, WorkMessage
from tests.fakes import FakeHistory
from tests.fakes_validation import FakeAccountProbe, failed
from tests.inprocess import InProcessApp

T = "11111111-1111-4111-8111-111111111111"
PASSWORD = "Group-Canary-7f3!"


def run_worker(app: InProcessApp, message, *, dequeue_count: int = 1):
    """The ``validation-requests`` trigger on ``message``, as the worker's event loop runs it."""
    body = message if isinstance(message, str) else message.to_json()
    return app.run("validation_worker", QueueMessage(id="m-1", body=body.encode(), dequeue_count=dequeue_count))


def create_job(app: InProcessApp, n: int) -> tuple[str, list[str]]:
    ids = [app.call("createProfile", tenantId=T, body={"name": f"p{i}", "username": f"u{i}@contoso.onmicrosoft.com",
                                                        "password": PASSWORD}).json()["id"] for i in range(n)]
    r = app.call("createValidationJob", tenantId=T, body={"profileIds": ids})
    assert r.status == 202, r.body
    return r.json()["id"], ids


def expand(app: InProcessApp) -> list[WorkGroup]:
    """Run the job's fan-out chunks; return the work groups they sent (and empty the queue)."""
    chunks = [m for m, _ in app.work.sent if isinstance(m, FanoutMessage)]
    app.work.sent.clear()
    for chunk in chunks:
        run_worker(app, chunk)
    groups = [m for m, _ in app.work.sent]
    app.work.sent.clear()
    assert all(isinstance(g, WorkGroup) for g in groups)
    return groups


def job(app: InProcessApp, job_id: str) -> dict:
    return app.call("getValidationJob", tenantId=T, jobId=job_id).json()


def test_a_chunk_goes_out_in_groups_of_eight_and_a_spread_chunk_one_by_one():
    ids = tuple(f"p{i}" for i in range(2 * WORK_GROUP + 3))
    groups = FanoutMessage(T, "j", ids, Reason.BATCH, "c").expand()
    assert [len(g.profile_ids) for g, _ in groups] == [WORK_GROUP, WORK_GROUP, 3]
    assert tuple(p for g, _ in groups for p in g.profile_ids) == ids and {d for _, d in groups} == {0}
    assert [m.profile_id for m in groups[0][0].messages()] == list(ids[:WORK_GROUP])
    spread = FanoutMessage(T, "j", ids[:3], Reason.SCHEDULED, "c", offset=10, spread_step=2.0).expand()
    assert [(type(m), d) for m, d in spread] == [(WorkMessage, 20), (WorkMessage, 22), (WorkMessage, 24)]
    again = FanoutMessage(T, "j", ids[:3], Reason.BATCH, "c").expand(claim=True)
    (group, _), = again
    assert group.claim and all(m.claim for m in group.messages())
    assert WorkMessage.from_json(group.to_json()) == group


def test_members_of_a_group_and_of_anything_else():
    app = InProcessApp()
    group = WorkGroup(T, "j", ("a", "b"), Reason.BATCH, "c", traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    members = [WorkMessage.from_json(m) for m in app.services.jobs.members(group.to_json())]
    assert [(m.profile_id, m.job_id, m.traceparent, m.claim) for m in members] == [
        ("a", "j", group.traceparent, False), ("b", "j", group.traceparent, False)]
    single = WorkMessage(T, "a", "j", Reason.BATCH, "c").to_json()
    assert app.services.jobs.members(single) == [single]
    assert app.services.jobs.members("not json") == ["not json"]


@dataclass
class MeetingProbe(FakeAccountProbe):
    """Every sign-in waits until ``n`` sign-ins are in progress at once (a barrier): a worker that
    validated a group's profiles one after another would never get past the first."""

    n: int = WORK_GROUP
    barrier: threading.Barrier = field(init=False)

    def __post_init__(self):
        self.barrier = threading.Barrier(self.n, timeout=10)

    def sign_in_modern(self, tenant_id, username, password, *, correlation_id):
        self.barrier.wait()
        return super().sign_in_modern(tenant_id, username, password, correlation_id=correlation_id)


def test_the_profiles_of_a_group_are_validated_at_the_same_time():
    app = InProcessApp(probe=MeetingProbe())
    job_id, ids = create_job(app, WORK_GROUP)
    (group,) = expand(app)
    assert sorted(group.profile_ids) == sorted(ids)
    run_worker(app, group)
    status = job(app, job_id)
    assert (status["done"], status["passed"], status["state"]) == (WORK_GROUP, WORK_GROUP, "completed")
    assert len(app.publisher.published) == WORK_GROUP


def test_a_redelivered_group_counts_nothing_and_signs_in_to_no_one():
    app = InProcessApp()
    job_id, ids = create_job(app, 3)
    (group,) = expand(app)
    run_worker(app, group)
    signed = app.probe.methods().count("sign_in_modern")
    run_worker(app, group, dequeue_count=2)
    run_worker(app, group, dequeue_count=1)  # a duplicate send: the profiles say their outcome is stored
    assert app.probe.methods().count("sign_in_modern") == signed == 3
    assert (job(app, job_id)["done"], len(app.publisher.published)) == (3, 3)


def test_a_throttled_profile_goes_back_alone_and_the_rest_of_its_group_passes():
    app = InProcessApp()
    app.probe.answer("sign_in_modern", failed("sign_in_modern", None, status=429, retry_after=30))
    job_id, ids = create_job(app, 3)
    (group,) = expand(app)
    run_worker(app, group)
    (retry, delay), = app.work.sent
    assert isinstance(retry, WorkMessage) and retry.throttled == 1 and delay == 30 and retry.profile_id in ids
    status = job(app, job_id)
    assert (status["done"], status["passed"], status["throttled"]) == (2, 2, 1)
    app.work.sent.clear()
    run_worker(app, retry)
    assert job(app, job_id)["state"] == "completed"


class FlakyHistory(FakeHistory):
    """Table Storage down for the history row of one profile (its first try only)."""

    def __init__(self):
        super().__init__()
        self.down_for: set[str] = set()

    def add(self, record, *, publish):
        if record.profile_id in self.down_for:
            self.down_for.discard(record.profile_id)
            raise DependencyUnavailable("Table Storage", retry_after=5)
        return super().add(record, publish=publish)


def test_a_group_fails_after_all_its_profiles_ran_and_its_retry_counts_each_once():
    app = InProcessApp(history=FlakyHistory())
    job_id, ids = create_job(app, 4)
    (group,) = expand(app)
    app.history.down_for = {ids[1]}
    with pytest.raises(DependencyUnavailable):
        run_worker(app, group)
    assert job(app, job_id)["done"] == 3  # the other three finished before the message failed
    run_worker(app, group, dequeue_count=2)  # the host's retry
    status = job(app, job_id)
    assert (status["done"], status["passed"], status["state"]) == (4, 4, "completed")
    assert app.probe.methods().count("sign_in_modern") == 5  # the failed one twice, the others once
    assert len({e.record_id for e in app.publisher.published}) == 4


def test_a_poisoned_group_marks_each_of_its_profiles():
    app = InProcessApp()
    job_id, ids = create_job(app, 3)
    (group,) = expand(app)
    assert app.services.jobs.process_poison(group.to_json()) == "error"
    status = job(app, job_id)
    assert (status["done"], status["errors"], status["state"]) == (3, 3, "completedWithErrors")
    assert app.services.jobs.process_poison(group.to_json()) == "alreadyFinal"


def test_a_group_delivered_to_process_runs_its_profiles_in_turn():
    app = InProcessApp()
    job_id, ids = create_job(app, 3)
    (group,) = expand(app)
    assert app.services.jobs.process(group.to_json(), dequeue_count=1) == "group"
    assert job(app, job_id)["passed"] == 3


def test_no_password_in_a_groups_messages_events_or_log_lines(caplog):
    caplog.set_level("DEBUG")
    app = InProcessApp()
    app.probe.answer("sign_in_modern", failed("sign_in_modern", None, status=429, retry_after=30))
    job_id, ids = create_job(app, 3)
    (group,) = expand(app)
    run_worker(app, group)
    texts = [group.to_json(), *(m.to_json() for m, _ in app.work.sent), *map(repr, app.publisher.published),
             *map(repr, app.history.records), caplog.text]
    assert app.work.sent and app.publisher.published
    assert not [t for t in texts if PASSWORD in t]
