"""Storage round trips of one batch validation, counted on the SDK clients' pipelines (worker side:
what ``JobServices.process`` sends for one profile of a work group; the host's own receive and
delete of the group's message come on top, an eighth per validation)."""
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
    assert sum(per_validation.values()) == ROUND_TRIPS_PER_VALIDATION, counts
    assert "GET ValidationJobs(entity)" not in counts  # the job's existence: read by its fan-out chunk
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


def test_the_app_logs_no_record_per_storage_call(storage_connection_string, caplog):
    """azure-core logs each request and response at INFO; the composition root keeps that logger
    at WARNING, so the host (which keeps Information from the app) does not get two records, headers
    formatted, for every storage call."""
    import logging
    import uuid

    from devtools.bench.counting import CountingPolicy, counted_services
    from shared.bootstrap import SDK_HTTP_LOGGER
    from shared.domain.jobs import Selection
    from shared.domain.profile import profile_input
    from tests.fakes import FakeSecretStore

    logging.getLogger(SDK_HTTP_LOGGER).setLevel(logging.NOTSET)  # as in a fresh worker process
    services, _ = counted_services(storage_connection_string, CountingPolicy(), secrets=FakeSecretStore())
    caplog.clear()
    with caplog.at_level(logging.INFO):
        tenant = str(uuid.uuid4())
        services.profiles.create_profile(tenant, profile_input({
            "name": "p", "username": "u@contoso.onmicrosoft.com", "password": "Pw-1!"}), correlation_id="c")
        job = services.jobs.create_job(tenant, Selection(all=True), correlation_id="c")
        services.jobs.get_job(tenant, job.job.id)
    assert [r for r in caplog.records if r.name == SDK_HTTP_LOGGER] == []
    assert {r.name for r in caplog.records} <= {"shared.services.profiles", "shared.services.jobs"}
