"""Storage round trips of one batch validation, counted on the SDK clients' pipelines (worker side:
what ``JobServices.process`` sends for one per-profile message; the host's own receive and delete
of the message come on top)."""
from __future__ import annotations

import pytest

from devtools import azurite as azurite_launcher
from devtools.bench.counting import batch_round_trips
from shared import names


@pytest.fixture(scope="module")
def storage_connection_string():
    """An Azurite of its own: the session's is shared with the e2e host, whose queue worker would
    take this test's work messages."""
    instance = azurite_launcher.start()
    try:
        yield instance.connection_string
    finally:
        instance.stop()

#: The round trips stated in shared/services/jobs.py (messages handled one at a time, so no group
#: commit: the performance target is at most 5).
ROUND_TRIPS_PER_VALIDATION = 5


def run_job(connection_string: str, profiles: int):
    return batch_round_trips(connection_string, profiles)


def test_a_batch_validation_costs_the_stated_minimum_of_storage_round_trips(storage_connection_string):
    services, summary, counts = run_job(storage_connection_string, 20)
    job = services.jobs.get_job(summary.job.tenant_id, summary.job.id)
    assert (job.done, job.passed) == (20, 20)
    per_validation = {k: v / 20 for k, v in counts.items()}
    assert sum(v for k, v in per_validation.items() if k != "GET ValidationJobs(entity)") == \
        ROUND_TRIPS_PER_VALIDATION, counts
    assert counts["GET ValidationJobs(entity)"] == 1  # the job's existence, once per job and process
    assert "POST ValidationJobs" not in counts  # first deliveries insert no claim ...
    assert counts["POST $batch"] == 20  # ... their final state (with the tally) is the insert


def test_job_status_reads_a_constant_number_of_entities(storage_connection_string):
    from devtools.bench.counting import CountingPolicy

    services, summary, _ = run_job(storage_connection_string, 20)
    policy = CountingPolicy()
    # the same services, counting from here: a status read is the job row plus its tallies
    from shared.adapters.table_job_repository import TableJobRepository

    counted = TableJobRepository(_counted_table(storage_connection_string, policy))
    job = counted.get(summary.job.tenant_id, summary.job.id)
    tallies = counted.tallies(job.id)
    assert len(tallies) == 1 and sum(policy.snapshot().values()) == 2
    assert sum(t.done for t in tallies) == 20


def _counted_table(connection_string, policy):
    from azure.data.tables import TableServiceClient

    from devtools.bench.counting import CountingTransport

    return TableServiceClient.from_connection_string(
        connection_string, transport=CountingTransport(policy)).get_table_client(names.JOBS_TABLE)
