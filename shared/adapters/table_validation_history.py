"""Validation history in Table Storage (``Validations``).

Rows: PartitionKey ``{tenantId}_{profileId}``, RowKey ``{inverted ms}-{record id}`` so a plain
partition query returns newest first. Unpublished outcomes also have an outbox row (PartitionKey
``outbox``) that the relay drains; the history row is written first, so an outbox entry always
points at a stored outcome.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.domain.ports import ValidationHistory, ValidationRecord

OUTBOX = "outbox"
_MAX_MS = 10**13


def _partition(tenant_id: str, profile_id: str) -> str:
    return f"{tenant_id}_{profile_id}"


def _row_key(record: ValidationRecord) -> str:
    ms = int(record.at.timestamp() * 1000)
    return f"{_MAX_MS - ms:013d}-{record.record_id}"


def _to_entity(record: ValidationRecord) -> dict[str, Any]:
    return {"PartitionKey": _partition(record.tenant_id, record.profile_id), "RowKey": _row_key(record),
            "TenantId": record.tenant_id, "ProfileId": record.profile_id, "RecordId": record.record_id,
            "At": record.at, "Status": record.status, "MessageId": record.message_id or "",
            "Outcome": json.dumps(record.outcome), "Reason": record.reason,
            "CorrelationId": record.correlation_id, "JobId": record.job_id or ""}


def _from_entity(e: dict[str, Any]) -> ValidationRecord:
    at = e["At"] if e["At"].tzinfo else e["At"].replace(tzinfo=timezone.utc)
    return ValidationRecord(tenant_id=e["TenantId"], profile_id=e["ProfileId"], record_id=e["RecordId"],
                            at=at, status=e["Status"], message_id=e.get("MessageId") or None,
                            outcome=json.loads(e["Outcome"]), reason=e["Reason"],
                            correlation_id=e.get("CorrelationId", ""), job_id=e.get("JobId") or None)


class TableValidationHistory(ValidationHistory):
    def __init__(self, table: TableClient):
        self._table = table

    def add(self, record: ValidationRecord, *, publish: bool) -> None:
        entity = _to_entity(record)
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        if publish:
            self._table.upsert_entity({"PartitionKey": OUTBOX, "RowKey": f"{entity['PartitionKey']}|{entity['RowKey']}",
                                       "HistoryPartition": entity["PartitionKey"], "HistoryRow": entity["RowKey"],
                                       "CreatedAt": datetime.now(timezone.utc)}, mode=UpdateMode.REPLACE)

    def list(self, tenant_id: str, profile_id: str, *, limit: int = 50) -> list[ValidationRecord]:
        query = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": _partition(tenant_id, profile_id)},
                                           results_per_page=limit)
        page = next(query.by_page(), [])
        return [_from_entity(e) for e in list(page)[:limit]]

    def mark_published(self, record: ValidationRecord) -> None:
        pk, rk = _partition(record.tenant_id, record.profile_id), _row_key(record)
        try:
            self._table.delete_entity(OUTBOX, f"{pk}|{rk}")
        except ResourceNotFoundError:
            pass

    def unpublished(self, *, limit: int = 100) -> list[ValidationRecord]:
        out = []
        for row in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": OUTBOX},
                                              results_per_page=limit):
            try:
                out.append(_from_entity(self._table.get_entity(row["HistoryPartition"], row["HistoryRow"])))
            except ResourceNotFoundError:
                self._table.delete_entity(OUTBOX, row["RowKey"])
            if len(out) >= limit:
                break
        return out
