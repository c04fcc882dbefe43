"""Tracing on Azurite: a history row keeps the W3C trace context of its test (``TraceParent``,
``TraceState`` columns), so the outbox relay's later publication carries the original trace; a row
stored before tracing (no such columns) reads as no trace and its event has no tracing extension."""
import json
import uuid
from datetime import datetime, timezone

import pytest
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.adapters.queue_outcome_publisher import QueueOutcomePublisher
from shared.adapters.table_validation_history import TableValidationHistory, _to_entity
from shared.domain.ports import ValidationRecord

T = "11111111-1111-4111-8111-111111111111"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Queue:
    def __init__(self):
        self.messages = []

    def send_message(self, content, **_):
        self.messages.append(json.loads(content))


def record(pid, **trace):
    return ValidationRecord(tenant_id=T, profile_id=pid, record_id=uuid.uuid4().hex,
                            at=datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc), status="failed",
                            message_id="MFA_ENABLED", outcome={"status": "failed", "messageId": "MFA_ENABLED"},
                            reason="manual", correlation_id="c", **trace)


@pytest.fixture
def table(storage_connection_string):
    service = TableServiceClient.from_connection_string(storage_connection_string)
    name = "Validations" + uuid.uuid4().hex[:8]
    service.create_table(name)
    yield TableClient.from_connection_string(storage_connection_string, name)
    service.delete_table(name)


def test_the_relay_publishes_an_outbox_outcome_with_its_original_trace(table):
    history, queue = TableValidationHistory(table), Queue()
    traced = record("p1", traceparent=TRACEPARENT, tracestate="portal=7")
    history.add(traced, publish=True)
    old = record("p2")
    legacy = {k: v for k, v in _to_entity(old).items() if k not in ("TraceParent", "TraceState")}
    history.add(old, publish=True)
    table.upsert_entity(legacy, mode=UpdateMode.REPLACE)  # as a row written before the columns existed
    assert "TraceParent" not in table.get_entity(legacy["PartitionKey"], legacy["RowKey"])
    (listed,) = history.list(T, "p1")
    assert (listed.traceparent, listed.tracestate) == (TRACEPARENT, "portal=7")
    publisher = QueueOutcomePublisher(queue)
    for rec in history.unpublished():
        publisher.publish(rec)
        history.mark_published(rec)
    by_profile = {e["data"]["profileId"]: e for e in queue.messages}
    assert (by_profile["p1"]["traceparent"], by_profile["p1"]["tracestate"]) == (TRACEPARENT, "portal=7")
    assert "traceparent" not in by_profile["p2"] and "tracestate" not in by_profile["p2"]
    assert history.unpublished() == []
