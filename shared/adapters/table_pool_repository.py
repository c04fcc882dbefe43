"""Account-pool members and their leases in Table Storage (``PoolLeases``, PartitionKey tenant).

Every lease or release is a conditional replace on the member's row (ETag), so two concurrent
requests can never both take the same member.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.adapters.storage import TABLE_STORAGE, TableAdapter, storage_errors
from shared.domain.errors import PreconditionFailed
from shared.domain.pool import PoolMember
from shared.domain.ports import PoolRepository


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value and not value.tzinfo else value


def _entity(tenant_id: str, m: PoolMember) -> dict[str, Any]:
    return {"PartitionKey": tenant_id, "RowKey": m.profile_id, "LeaseId": m.lease_id or "",
            "LeasedUntil": m.leased_until, "LastLeasedAt": m.last_leased_at, "RestUntil": m.rest_until,
            "ThrottleReports": m.throttle_reports}


def _member(e: Any) -> PoolMember:
    return PoolMember(profile_id=e["RowKey"], lease_id=e.get("LeaseId") or None,
                      leased_until=_utc(e.get("LeasedUntil")), last_leased_at=_utc(e.get("LastLeasedAt")),
                      rest_until=_utc(e.get("RestUntil")), throttle_reports=int(e.get("ThrottleReports") or 0),
                      etag=e.metadata.get("etag"))


class TablePoolRepository(TableAdapter, PoolRepository):
    """:class:`PoolRepository` on one table; every call is one round trip."""

    def members(self, tenant_id: str) -> list[PoolMember]:
        with storage_errors(TABLE_STORAGE):
            return [_member(e) for e in self._table.query_entities("PartitionKey eq @t",
                                                                   parameters={"t": tenant_id})]

    def add_member(self, tenant_id: str, profile_id: str) -> None:
        with storage_errors(TABLE_STORAGE):
            try:
                self._table.create_entity(_entity(tenant_id, PoolMember(profile_id)))
            except ResourceExistsError:
                pass

    def remove_member(self, tenant_id: str, profile_id: str) -> None:
        with storage_errors(TABLE_STORAGE):
            try:
                self._table.delete_entity(tenant_id, profile_id)
            except ResourceNotFoundError:  # the SDK already treats a 404 as deleted; be explicit
                pass

    def replace_member(self, tenant_id: str, member: PoolMember) -> PoolMember:
        """Conditional on ``member.etag``; PreconditionFailed when another request got there first."""
        with storage_errors(TABLE_STORAGE):
            try:
                meta = self._table.update_entity(_entity(tenant_id, member), mode=UpdateMode.REPLACE,
                                                 etag=member.etag, match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError) as exc:
                raise PreconditionFailed() from exc
        return replace(member, etag=meta.get("etag"))
