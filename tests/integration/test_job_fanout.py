"""Fan-out of a large job on Azurite: 10,000 profile ids make one job row and 40 fan-out messages,
which the worker turns into work groups of eight profiles (the row keeps a count, not the ids, which would not
fit a Table property)."""
import time
import uuid
from datetime import datetime, timezone

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from shared.adapters.queue_work_queue import QueueWorkQueue
from shared.adapters.table_job_repository import TableJobRepository
from shared.domain.jobs import WORK_GROUP, JobState, Selection, WorkMessage
from shared.services.jobs import JobServices, WorkResult

T = "11111111-1111-4111-8111-111111111111"


def test_ten_thousand_profile_job(storage_connection_string):
    tables = TableServiceClient.from_connection_string(storage_connection_string)
    table = tables.create_table("Jobs" + uuid.uuid4().hex[:8])
    queue = QueueServiceClient.from_connection_string(storage_connection_string).get_queue_client(
        "fanout-" + uuid.uuid4().hex[:8], message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy())
    queue.create_queue()
    jobs = JobServices(TableJobRepository(table), profiles=None, runs=None, work=QueueWorkQueue(queue),
                       clock=lambda: datetime.now(timezone.utc))
    ids = [str(uuid.uuid4()) for _ in range(10_000)]
    started = time.perf_counter()
    job = jobs.create_job(T, Selection(profile_ids=tuple(ids)), correlation_id="fanout").job
    elapsed = time.perf_counter() - started
    print(f"10,000-profile job created and enqueued in {elapsed:.1f} s")
    got = jobs.get_job(T, job.id)
    assert (got.total, got.done, got.state, got.job.selection) == (10_000, 0, JobState.QUEUED, {"profileIds": 10_000})
    chunks = [WorkMessage.from_json(m.content) for m in queue.receive_messages(messages_per_page=32, max_messages=64)]
    assert len(chunks) == 40 and sorted(p for c in chunks for p in c.profile_ids) == sorted(ids)
    queue.clear_messages()
    started = time.perf_counter()
    assert jobs.process(chunks[0].to_json()) == WorkResult.FANNED_OUT
    print(f"one chunk expanded into {-(-250 // WORK_GROUP)} work groups in {time.perf_counter() - started:.2f} s")
    groups = [WorkMessage.from_json(m.content) for m in queue.receive_messages(messages_per_page=32, max_messages=64)]
    assert all(g.job_id == job.id and len(g.profile_ids) <= WORK_GROUP for g in groups)
    assert sorted(p for g in groups for p in g.profile_ids) == sorted(chunks[0].profile_ids)
    tables.delete_table(table.table_name)
    queue.delete_queue()
