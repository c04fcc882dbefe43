"""Validation history and its outbox on Azurite: an outcome is never stored without its outbox marker
(one entity-group transaction), and one whose publication never happened is relayed later, not lost."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, TableServiceClient

from shared.adapters.table_validation_history import MARKER_PREFIX, TableValidationHistory
from shared.domain.errors import DependencyUnavailable
from shared.domain.ports import ValidationRecord
from tests.fakes import FakePublisher

T = "11111111-1111-4111-8111-111111111111"


def record(pid, at, status="failed", message_id="MFA_ENABLED"):
    return ValidationRecord(tenant_id=T, profile_id=pid, record_id=uuid.uuid4().hex, at=at, status=status,
                            message_id=message_id, outcome={"status": status, "messageId": message_id},
                            reason="manual", correlation_id="c")


def relay(history, publisher) -> int:
    """What the relay does with the ports (the service's ``relay_outbox``, without the service):
    publish each unpublished outcome, then clear its entry; a failed publication stays."""
    sent = 0
    for rec in history.unpublished():
        try:
            publisher.publish(rec)
        except DependencyUnavailable:
            continue
        history.mark_published(rec)
        sent += 1
    return sent


@pytest.fixture
def table_name(storage_connection_string):
    service = TableServiceClient.from_connection_string(storage_connection_string)
    name = "Validations" + uuid.uuid4().hex[:8]
    service.create_table(name)
    yield name
    service.delete_table(name)


@pytest.fixture
def table(storage_connection_string, table_name) -> TableClient:
    return TableClient.from_connection_string(storage_connection_string, table_name)


class FaultyTransport(RequestsTransport):
    """Counts the write requests (everything but GET) and fails the ``fail_write``-th one: before it
    leaves (``before``: the service never sees it) or after the service answered (``after``: the
    write happened, the answer is lost, as when the process dies right then)."""

    def __init__(self, *, fail_write: int = 0, when: str = "before"):
        super().__init__(use_env_settings=False)
        self.fail_write, self.when = fail_write, when
        self.writes: list[str] = []
        self.reads: list[str] = []

    def send(self, request, **kwargs):
        if request.method == "GET":
            self.reads.append(request.url)
            return super().send(request, **kwargs)
        self.writes.append(f"{request.method} {request.url}")
        if len(self.writes) == self.fail_write and self.when == "before":
            raise ServiceRequestError("injected: connection lost before the request was sent")
        response = super().send(request, **kwargs)
        if len(self.writes) == self.fail_write:
            raise ServiceResponseError("injected: connection lost before the answer arrived")
        return response


def rows(table: TableClient, pid: str) -> tuple[list[str], list[str]]:
    """(history RowKeys, marker RowKeys) of the profile's partition."""
    keys = [e["RowKey"] for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": f"{T}_{pid}"})]
    return ([k for k in keys if not k.startswith(MARKER_PREFIX)],
            [k[len(MARKER_PREFIX):] for k in keys if k.startswith(MARKER_PREFIX)])


def test_history_newest_first_and_outbox_relay(table):
    history = TableValidationHistory(table)
    publisher = FakePublisher()
    pid = str(uuid.uuid4())
    now = datetime.now(timezone.utc)
    old, new = record(pid, now - timedelta(minutes=5), "passed", None), record(pid, now)
    history.add(old, publish=False)
    history.add(new, publish=True)
    assert [r.record_id for r in history.list(T, pid)] == [new.record_id, old.record_id]
    assert [r.record_id for r in history.unpublished()] == [new.record_id]

    publisher.down = True
    assert relay(history, publisher) == 0 and [r.record_id for r in history.unpublished()] == [new.record_id]
    publisher.down = False
    assert relay(history, publisher) == 1
    assert [r.record_id for r in publisher.published] == [new.record_id] and history.unpublished() == []
    assert relay(history, publisher) == 0


def test_an_outcome_and_its_marker_are_one_write(storage_connection_string, table_name, table):
    transport = FaultyTransport()
    history = TableValidationHistory(TableClient.from_connection_string(
        storage_connection_string, table_name, transport=transport, retry_total=0))
    pid = str(uuid.uuid4())
    rec = record(pid, datetime.now(timezone.utc))
    history.add(rec, publish=True)
    assert len(transport.writes) == 1 and transport.writes[0].startswith("POST") and "$batch" in transport.writes[0]
    history_keys, markers = rows(table, pid)
    assert len(history_keys) == 1 and markers == history_keys


@pytest.mark.parametrize("fail_write", [1, 2])
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_failed_write_leaves_both_rows_or_neither(storage_connection_string, table_name, table, fail_write, when):
    """Whichever write request of ``add`` fails, and whether before or after the service saw it, the
    partition never holds a history row without its marker (the relay would never publish it).
    Two separate upserts fail this: the second write failing leaves the history row alone."""
    transport = FaultyTransport(fail_write=fail_write, when=when)
    history = TableValidationHistory(TableClient.from_connection_string(
        storage_connection_string, table_name, transport=transport, retry_total=0))
    pid = str(uuid.uuid4())
    rec = record(pid, datetime.now(timezone.utc))
    try:
        history.add(rec, publish=True)
    except DependencyUnavailable as exc:
        assert isinstance(exc.__cause__, (ServiceRequestError, ServiceResponseError))
    history_keys, markers = rows(table, pid)
    assert history_keys == markers, f"history rows {history_keys} but markers {markers}"
    # The caller's retry (the host redelivers the work message) completes it exactly once.
    TableValidationHistory(table).add(rec, publish=True)
    history_keys, markers = rows(table, pid)
    assert len(history_keys) == 1 and markers == history_keys


class RejectedBatchTable(TableClient):
    """A table whose every transaction also creates a row that already exists: the service rejects
    the whole batch (409), so none of its operations may be applied."""

    sentinel: dict

    def submit_transaction(self, operations, **kwargs):
        return super().submit_transaction(list(operations) + [("create", self.sentinel)], **kwargs)


def test_a_batch_the_service_rejects_writes_nothing(storage_connection_string, table_name, table):
    pid = str(uuid.uuid4())
    sentinel = {"PartitionKey": f"{T}_{pid}", "RowKey": "0-sentinel", "TenantId": T}
    table.create_entity(sentinel)
    client = RejectedBatchTable.from_connection_string(storage_connection_string, table_name)
    client.sentinel = sentinel
    with pytest.raises(Exception):
        TableValidationHistory(client).add(record(pid, datetime.now(timezone.utc)), publish=True)
    assert rows(table, pid) == (["0-sentinel"], [])


def test_a_crash_after_storing_leaves_the_outcome_to_the_relay(storage_connection_string, table_name, table):
    pid = str(uuid.uuid4())
    rec = record(pid, datetime.now(timezone.utc))
    TableValidationHistory(table).add(rec, publish=True)  # ... and the process dies before publishing

    restarted = TableValidationHistory(TableClient.from_connection_string(storage_connection_string, table_name))
    assert restarted.unpublished() == [rec]
    publisher = FakePublisher()
    assert relay(restarted, publisher) == 1
    assert publisher.published == [rec] and restarted.unpublished() == []
    assert restarted.list(T, pid) == [rec]


def test_relay_reads_only_keys_then_one_point_read_per_marker(storage_connection_string, table_name, table):
    history = TableValidationHistory(table)
    now = datetime.now(timezone.utc)
    for i in range(3):
        history.add(record(str(uuid.uuid4()), now), publish=i < 2)
    transport = FaultyTransport()
    counted = TableValidationHistory(TableClient.from_connection_string(
        storage_connection_string, table_name, transport=transport))
    assert len(counted.unpublished()) == 2
    scans = [u for u in transport.reads if "$filter=RowKey" in u]
    assert len(scans) == 1 and "$select=PartitionKey%2CRowKey" in scans[0] and "$top=100" in scans[0]
    assert len(transport.reads) == 1 + 1 + 2  # legacy partition, scan, 2 point reads
    assert transport.writes == []


def test_outbox_rows_of_the_old_design_are_still_relayed(table):
    """Before markers moved into the history partition, the outbox was PartitionKey ``outbox``."""
    from shared.adapters.table_validation_history import _to_entity

    pid = str(uuid.uuid4())
    rec = record(pid, datetime.now(timezone.utc))
    entity = _to_entity(rec)
    table.upsert_entity(entity)
    table.upsert_entity({"PartitionKey": "outbox", "RowKey": f"{entity['PartitionKey']}|{entity['RowKey']}",
                         "HistoryPartition": entity["PartitionKey"], "HistoryRow": entity["RowKey"]})
    history = TableValidationHistory(table)
    assert history.unpublished() == [rec]
    history.mark_published(rec)
    assert history.unpublished() == [] and list(table.query_entities("PartitionKey eq 'outbox'")) == []
