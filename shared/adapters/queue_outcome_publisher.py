"""Validation outcomes as CloudEvents 1.0 (structured JSON, CloudEvents SDK) on ``troubleshooting-outcomes``.

The event id is the history record's id, so a consumer can drop a re-published duplicate. Both
events carry the CloudEvents distributed-tracing extension (``traceparent``, ``tracestate``) of the
trace that produced the outcome, from the record (so a later relay publication keeps it); a record
stored before tracing has none and its events go without the extension.
"""
from __future__ import annotations

from azure.core.exceptions import AzureError
from azure.storage.queue import QueueClient
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from shared.adapters.storage import QUEUE_STORAGE, ping_queue, unavailable
from shared.domain.events import OUTCOME_EXPLAINED, VALIDATION_OUTCOME
from shared.domain.ports import OutcomePublisher, ValidationRecord

EVENT_TYPE = VALIDATION_OUTCOME
EXPLAINED_TYPE = OUTCOME_EXPLAINED
DATA_SCHEMA = "https://m365-profiles.dev/schemas/validation-outcome/v1"
#: Outcome fields that go on the wire (the stored outcome is already secret-free; this keeps it small).
_DATA_FIELDS = ("status", "messageId", "message", "cause", "userRole", "checks", "evidence", "limitations")


def _tracing(record: ValidationRecord) -> dict[str, str]:
    """The distributed-tracing extension attributes of the record's events (none without a trace)."""
    if not record.traceparent:
        return {}
    return {"traceparent": record.traceparent, **({"tracestate": record.tracestate} if record.tracestate else {})}


def to_cloudevent(record: ValidationRecord) -> CloudEvent:
    data = {"tenantId": record.tenant_id, "profileId": record.profile_id, "recordId": record.record_id,
            "reason": record.reason, "jobId": record.job_id, "correlationId": record.correlation_id,
            "testedAt": record.at.isoformat(),
            **{k: record.outcome.get(k) for k in _DATA_FIELDS}}
    return CloudEvent(attributes={
        "id": record.record_id, "source": f"/tenants/{record.tenant_id}/profiles/{record.profile_id}",
        "type": EVENT_TYPE, "subject": record.profile_id, "time": record.at,
        "datacontenttype": "application/json", "dataschema": DATA_SCHEMA, **_tracing(record)}, data=data)


def explained_cloudevent(record: ValidationRecord) -> CloudEvent:
    """The follow-up of an outcome: the blocking policy named from the sign-in log."""
    data = {"tenantId": record.tenant_id, "profileId": record.profile_id, "recordId": record.record_id,
            "correlationId": record.correlation_id, "messageId": record.message_id,
            "explanation": record.outcome.get("explanation")}
    return CloudEvent(attributes={
        "id": f"{record.record_id}:explained", "source": f"/tenants/{record.tenant_id}/profiles/{record.profile_id}",
        "type": EXPLAINED_TYPE, "subject": record.profile_id, "datacontenttype": "application/json",
        "dataschema": DATA_SCHEMA, **_tracing(record)}, data=data)


def to_message(record: ValidationRecord) -> str:
    return JSONFormat().write(to_cloudevent(record)).decode()


class QueueOutcomePublisher(OutcomePublisher):
    """:class:`OutcomePublisher` on a Storage queue; one round trip per outcome."""

    def __init__(self, queue: QueueClient):
        self._queue = queue

    def ping(self) -> None:
        ping_queue(self._queue)

    def publish(self, record: ValidationRecord) -> None:
        self._send(to_message(record))

    def publish_explained(self, record: ValidationRecord) -> None:
        self._send(JSONFormat().write(explained_cloudevent(record)).decode())

    def _send(self, message: str) -> None:
        try:
            self._queue.send_message(message)
        except AzureError as exc:  # the message is an outcome, never a secret: the cause can travel
            raise unavailable(exc, QUEUE_STORAGE) from exc
