"""Validation jobs and their items in Table Storage (``ValidationJobs``).

Job rows: PartitionKey tenant, RowKey job id. Item rows: PartitionKey ``items-{jobId}``, RowKey
profile id, created when a worker first claims the profile (an insert, so two copies of one message
cannot both claim it) and then updated conditionally (ETag). A profile without an item row is
pending; the job's total is on its row.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Sequence

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from shared.adapters.storage import TABLE_STORAGE, TableAdapter, storage_errors
from shared.domain.errors import NotFound, PreconditionFailed
from shared.domain.jobs import ITEMS_PER_WRITE, ItemState, Job, JobItem, JobTally, Reason
from shared.domain.ports import JobRepository


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value and not value.tzinfo else value


def _items_partition(job_id: str) -> str:
    return f"items-{job_id}"


def _job_entity(job: Job) -> dict[str, Any]:
    return {"PartitionKey": job.tenant_id, "RowKey": job.id, "Reason": job.reason.value,
            "Selection": json.dumps(job.selection), "Total": job.total, "CreatedAt": job.created_at,
            "CorrelationId": job.correlation_id, "StartedAt": job.started_at}


def _job(e: Any) -> Job:
    return Job(id=e["RowKey"], tenant_id=e["PartitionKey"], reason=Reason(e["Reason"]),
               selection=json.loads(e["Selection"]), total=int(e["Total"]),
               created_at=_utc(e["CreatedAt"]), correlation_id=e.get("CorrelationId", ""),
               started_at=_utc(e.get("StartedAt")))


def _item_entity(item: JobItem, claimed_until: datetime | None = None) -> dict[str, Any]:
    return {"PartitionKey": _items_partition(item.job_id), "RowKey": item.profile_id, "State": item.state.value,
            "MessageId": item.message_id or "", "Throttled": item.throttled, "Detail": item.detail,
            "FinishedAt": item.finished_at, "ClaimedUntil": claimed_until}


#: Tally rows sort after every profile id (GUIDs) in the items partition.
TALLY_PREFIX = "~tally-"


def _tally_entity(job_id: str, tally: JobTally) -> dict[str, Any]:
    return {"PartitionKey": _items_partition(job_id), "RowKey": TALLY_PREFIX + tally.shard, "Done": tally.done,
            "Passed": tally.passed, "Failed": tally.failed, "Errors": tally.errors, "Throttled": tally.throttled,
            "ByMessageId": json.dumps(tally.by_message_id), "Failures": json.dumps(tally.failures),
            "StartedAt": tally.started_at, "FinishedAt": tally.finished_at}


def _tally(e: Any) -> JobTally:
    return JobTally(shard=e["RowKey"][len(TALLY_PREFIX):], done=int(e.get("Done") or 0),
                    passed=int(e.get("Passed") or 0), failed=int(e.get("Failed") or 0),
                    errors=int(e.get("Errors") or 0), throttled=int(e.get("Throttled") or 0),
                    by_message_id=json.loads(e.get("ByMessageId") or "{}"),
                    failures=json.loads(e.get("Failures") or "{}"),
                    started_at=_utc(e.get("StartedAt")), finished_at=_utc(e.get("FinishedAt")))


def _item(e: Any) -> tuple[JobItem, datetime | None, str]:
    item = JobItem(job_id=e["PartitionKey"][len("items-"):], profile_id=e["RowKey"], state=ItemState(e["State"]),
                   message_id=e.get("MessageId") or None, throttled=int(e.get("Throttled") or 0),
                   detail=e.get("Detail", ""), finished_at=_utc(e.get("FinishedAt")))
    return item, _utc(e.get("ClaimedUntil")), e.metadata.get("etag")


class TableJobRepository(TableAdapter, JobRepository):
    """:class:`JobRepository` on one table; every call is one round trip (``mark_started``: two).
    ``write_items`` is an entity-group transaction: the items partition holds the tally rows too."""

    def add(self, job: Job) -> None:
        with storage_errors(TABLE_STORAGE):
            try:
                self._table.create_entity(_job_entity(job))
            except ResourceExistsError as exc:
                raise PreconditionFailed() from exc

    def create_item(self, item: JobItem, *, claimed_until: datetime | None = None) -> str:
        """Insert an item (a claim); PreconditionFailed when it exists. One round trip."""
        with storage_errors(TABLE_STORAGE):
            try:
                meta = self._table.create_entity(_item_entity(item, claimed_until))
            except ResourceExistsError as exc:
                raise PreconditionFailed() from exc
        return meta["etag"]

    def write_items(self, job_id: str, writes: Sequence[tuple[JobItem, str | None]], tally: JobTally) -> list[str]:
        """Every write and the tally upsert as one entity-group transaction (one round trip; at most
        :data:`~shared.domain.jobs.ITEMS_PER_WRITE` items); the items' new ETags in order."""
        if not 0 < len(writes) <= ITEMS_PER_WRITE:
            raise ValueError(f"1 to {ITEMS_PER_WRITE} items per write, not {len(writes)}")
        operations: list[tuple] = []
        for item, etag in writes:
            if etag is None:
                operations.append(("create", _item_entity(item)))
            else:
                condition = {} if etag == "*" else {"etag": etag, "match_condition": MatchConditions.IfNotModified}
                operations.append(("update", _item_entity(item), {"mode": UpdateMode.REPLACE, **condition}))
        operations.append(("upsert", _tally_entity(job_id, tally), {"mode": UpdateMode.REPLACE}))
        with storage_errors(TABLE_STORAGE):
            try:
                results = self._table.submit_transaction(operations)
            except TableTransactionError as exc:
                if exc.status_code in (404, 409, 412):
                    raise PreconditionFailed() from exc
                raise
        return [r["etag"] for r in results[:len(writes)]]

    def tallies(self, job_id: str) -> list[JobTally]:
        """One query of the items partition's tally rows (they sort after every profile id)."""
        with storage_errors(TABLE_STORAGE):
            return [_tally(e) for e in self._table.query_entities(
                "PartitionKey eq @pk and RowKey ge @lo", parameters={"pk": _items_partition(job_id),
                                                                     "lo": TALLY_PREFIX})]

    def get(self, tenant_id: str, job_id: str) -> Job:
        with storage_errors(TABLE_STORAGE):
            try:
                return _job(self._table.get_entity(tenant_id, job_id))
            except ResourceNotFoundError as exc:
                raise NotFound("Job", job_id) from exc

    def mark_started(self, tenant_id: str, job_id: str, at: datetime) -> None:
        """Set ``StartedAt`` once (first writer wins; later calls are no-ops)."""
        with storage_errors(TABLE_STORAGE):
            try:
                entity = self._table.get_entity(tenant_id, job_id)
                if entity.get("StartedAt"):
                    return
                self._table.update_entity({"PartitionKey": tenant_id, "RowKey": job_id, "StartedAt": at},
                                          mode=UpdateMode.MERGE, etag=entity.metadata["etag"],
                                          match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                return

    def items(self, job_id: str) -> list[JobItem]:
        with storage_errors(TABLE_STORAGE):
            return [_item(e)[0] for e in self._table.query_entities(
                "PartitionKey eq @pk and RowKey lt @hi", parameters={"pk": _items_partition(job_id), "hi": "~"},
                select=["PartitionKey", "RowKey", "State", "MessageId", "Throttled", "FinishedAt"])]

    def get_item(self, job_id: str, profile_id: str) -> tuple[JobItem, datetime | None, str]:
        """(item, claimed until, etag)."""
        with storage_errors(TABLE_STORAGE):
            try:
                return _item(self._table.get_entity(_items_partition(job_id), profile_id))
            except ResourceNotFoundError as exc:
                raise NotFound("Job item", f"{job_id}/{profile_id}") from exc

    def save_item(self, item: JobItem, *, etag: str, claimed_until: datetime | None = None) -> str:
        """Conditional replace; returns the new ETag or raises PreconditionFailed. One round trip."""
        with storage_errors(TABLE_STORAGE):
            try:
                meta = self._table.update_entity(_item_entity(item, claimed_until), mode=UpdateMode.REPLACE,
                                                 etag=etag, match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError) as exc:
                raise PreconditionFailed() from exc
        return meta["etag"]
