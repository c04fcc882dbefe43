"""Validation history and its outbox on Azurite; a failed publication is relayed later, not lost."""
import uuid
from datetime import datetime, timedelta, timezone

from azure.data.tables import TableServiceClient

from shared.adapters.table_validation_history import TableValidationHistory
from shared.domain.ports import ValidationRecord
from shared.services.validation_runs import ValidationRuns
from tests.fakes import FakePublisher

T = "11111111-1111-4111-8111-111111111111"


def record(pid, at, status="failed", message_id="MFA_ENABLED"):
    return ValidationRecord(tenant_id=T, profile_id=pid, record_id=uuid.uuid4().hex, at=at, status=status,
                            message_id=message_id, outcome={"status": status, "messageId": message_id},
                            reason="manual", correlation_id="c")


def test_history_newest_first_and_outbox_relay(storage_connection_string):
    service = TableServiceClient.from_connection_string(storage_connection_string)
    table = service.create_table("Validations" + uuid.uuid4().hex[:8])
    history = TableValidationHistory(table)
    publisher = FakePublisher()
    runs = ValidationRuns(None, None, history, publisher, None, ())
    pid = str(uuid.uuid4())
    now = datetime.now(timezone.utc)
    old, new = record(pid, now - timedelta(minutes=5), "passed", None), record(pid, now)
    history.add(old, publish=False)
    history.add(new, publish=True)
    assert [r.record_id for r in history.list(T, pid)] == [new.record_id, old.record_id]
    assert [r.record_id for r in history.unpublished()] == [new.record_id]

    publisher.down = True
    assert runs.publish(new) is False and [r.record_id for r in history.unpublished()] == [new.record_id]
    publisher.down = False
    assert runs.relay_outbox() == 1
    assert [r.record_id for r in publisher.published] == [new.record_id] and history.unpublished() == []
    assert runs.relay_outbox() == 0
    service.delete_table(table.table_name)
