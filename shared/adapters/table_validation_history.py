"""Validation history in Table Storage (``Validations``), with its outbox in the same partition.

Rows: PartitionKey ``{tenantId}_{profileId}``, RowKey ``{inverted ms}-{record id}`` (13 digits first),
so a plain partition query returns newest first. An outcome still to be published also has an
outbox marker in the same partition, RowKey ``~outbox-{history RowKey}``: ``~`` sorts after every
digit, so :meth:`TableValidationHistory.list` (``RowKey lt '~'``) never sees a marker and stays newest
first. The history row and its marker are written in one entity-group transaction, so a crash or a
failed request can never leave an outcome stored without its marker (the relay would never publish
it) nor a marker without its outcome.

Round trips per call:

* ``add(publish=False)``: 1 (an upsert). ``add(publish=True)``: 1 (a ``$batch`` of two upserts).
  Both are idempotent: a retry after a lost answer replaces the same rows.
* ``list``: 1 (one partition, first page of ``limit`` rows).
* ``mark_published``: 1 (a delete; a missing marker is a no-op).
* ``unpublished(limit=n)``: one query page per 1,000 entities *scanned* plus one point read per marker
  found (at most ``n``). The query filters on RowKey alone, which the service cannot serve from the
  PartitionKey index: it is a **scan of the whole table**, and its cost grows with the history, not
  with the outbox. It is bounded by selecting only the keys (``select``), stopping at ``n`` markers,
  ``results_per_page`` of at most 1,000, and by running on the relay's timer, off the request path.
  (A dedicated outbox partition would make it a cheap single-partition query, but the marker could
  then not share the history row's transaction: that was the old design, which lost outcomes.)

A history row keeps the W3C trace context of the test (``TraceParent``, ``TraceState``; empty or
absent in rows stored before tracing) for the outcome events.

Rows of the old design (PartitionKey ``outbox``) are still drained by :meth:`unpublished` (one
single-partition query), so outcomes written before the change are not lost.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.adapters.storage import TABLE_STORAGE, TableAdapter, storage_errors
from shared.domain.ports import ValidationHistory, ValidationRecord

#: RowKey prefix of an outbox marker; sorts after every history RowKey (which starts with a digit).
MARKER_PREFIX = "~outbox-"
#: The first RowKey after every marker ('.' follows '-').
_MARKER_END = "~outbox."
#: PartitionKey of the outbox rows written before markers moved into the history partition.
LEGACY_OUTBOX = "outbox"
_MAX_MS = 10**13
#: The service answers at most 1,000 entities per page.
_MAX_PAGE = 1000


def _partition(tenant_id: str, profile_id: str) -> str:
    return f"{tenant_id}_{profile_id}"


def _row_key(record: ValidationRecord) -> str:
    ms = int(record.at.timestamp() * 1000)
    return f"{_MAX_MS - ms:013d}-{record.record_id}"


def _marker_key(history_row_key: str) -> str:
    return MARKER_PREFIX + history_row_key


def _to_entity(record: ValidationRecord) -> dict[str, Any]:
    return {"PartitionKey": _partition(record.tenant_id, record.profile_id), "RowKey": _row_key(record),
            "TenantId": record.tenant_id, "ProfileId": record.profile_id, "RecordId": record.record_id,
            "At": record.at, "Status": record.status, "MessageId": record.message_id or "",
            "Outcome": json.dumps(record.outcome), "Reason": record.reason,
            "CorrelationId": record.correlation_id, "JobId": record.job_id or "",
            "TraceParent": record.traceparent or "", "TraceState": record.tracestate or ""}


def _marker(entity: dict[str, Any]) -> dict[str, Any]:
    return {"PartitionKey": entity["PartitionKey"], "RowKey": _marker_key(entity["RowKey"]),
            "CreatedAt": datetime.now(timezone.utc)}


def _from_entity(e: dict[str, Any]) -> ValidationRecord:
    at = e["At"] if e["At"].tzinfo else e["At"].replace(tzinfo=timezone.utc)
    return ValidationRecord(tenant_id=e["TenantId"], profile_id=e["ProfileId"], record_id=e["RecordId"],
                            at=at, status=e["Status"], message_id=e.get("MessageId") or None,
                            outcome=json.loads(e["Outcome"]), reason=e["Reason"],
                            correlation_id=e.get("CorrelationId", ""), job_id=e.get("JobId") or None,
                            traceparent=e.get("TraceParent") or None, tracestate=e.get("TraceState") or None)


class TableValidationHistory(TableAdapter, ValidationHistory):
    def add(self, record: ValidationRecord, *, publish: bool) -> None:
        entity = _to_entity(record)
        with storage_errors(TABLE_STORAGE):
            if publish:  # one $batch: both rows or neither
                self._table.submit_transaction([("upsert", entity, {"mode": UpdateMode.REPLACE}),
                                                ("upsert", _marker(entity), {"mode": UpdateMode.REPLACE})])
            else:
                self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def list(self, tenant_id: str, profile_id: str, *, limit: int = 50) -> list[ValidationRecord]:
        if limit <= 0:
            return []
        with storage_errors(TABLE_STORAGE):
            query = self._table.query_entities("PartitionKey eq @pk and RowKey lt @end",
                                               parameters={"pk": _partition(tenant_id, profile_id),
                                                           "end": "~"},
                                               results_per_page=min(limit, _MAX_PAGE))
            out: list[ValidationRecord] = []
            for entity in query:  # stop before the pager asks for a page we do not need
                out.append(_from_entity(entity))
                if len(out) >= limit:
                    break
        return out

    def mark_published(self, record: ValidationRecord) -> None:
        pk, rk = _partition(record.tenant_id, record.profile_id), _row_key(record)
        with storage_errors(TABLE_STORAGE):
            try:
                self._table.delete_entity(pk, _marker_key(rk))
            except ResourceNotFoundError:
                pass

    def unpublished(self, *, limit: int = 100) -> list[ValidationRecord]:
        """Markers (a table scan on RowKey, keys only), then one point read per marker found."""
        out: list[ValidationRecord] = []
        if limit <= 0:
            return out
        with storage_errors(TABLE_STORAGE):
            self._migrate_legacy(limit)
            markers = self._table.query_entities(
                "RowKey ge @start and RowKey lt @end", parameters={"start": MARKER_PREFIX, "end": _MARKER_END},
                select=["PartitionKey", "RowKey"], results_per_page=min(limit, _MAX_PAGE))
            for marker in markers:
                pk, rk = marker["PartitionKey"], marker["RowKey"][len(MARKER_PREFIX):]
                try:
                    out.append(_from_entity(self._table.get_entity(pk, rk)))
                except ResourceNotFoundError:  # the history row was removed by hand: nothing to publish
                    self._table.delete_entity(pk, marker["RowKey"])
                if len(out) >= limit:
                    break
        return out

    def _migrate_legacy(self, limit: int) -> None:
        """Move old-design outbox rows to markers (each: one upsert, then one delete), so an
        outcome stored before the change is still published. Empty after the first relay run."""
        legacy = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": LEGACY_OUTBOX},
                                            select=["RowKey", "HistoryPartition", "HistoryRow"],
                                            results_per_page=min(limit, _MAX_PAGE))
        for n, row in enumerate(legacy, 1):
            self._table.upsert_entity(_marker({"PartitionKey": row["HistoryPartition"],
                                               "RowKey": row["HistoryRow"]}), mode=UpdateMode.REPLACE)
            self._table.delete_entity(LEGACY_OUTBOX, row["RowKey"])
            if n >= limit:
                return
