"""Webhook event ids in Table Storage (``WebhookEvents``): PartitionKey portal, RowKey event id."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from shared.adapters.storage import TABLE_STORAGE, TableAdapter, storage_errors
from shared.domain.ports import WebhookEventLog


def _row_key(event_id: str) -> str:
    # Event ids are portal-chosen strings; RowKey forbids / \ # ? and control characters.
    return hashlib.sha256(event_id.encode()).hexdigest()


class TableWebhookEventLog(TableAdapter, WebhookEventLog):
    """:class:`WebhookEventLog` on one table: an insert, so only one of two concurrent deliveries wins."""

    def try_record(self, portal_id: str, event_id: str, *, event_type: str) -> bool:
        with storage_errors(TABLE_STORAGE):
            try:
                self._table.create_entity({"PartitionKey": portal_id, "RowKey": _row_key(event_id),
                                           "EventType": event_type, "ReceivedAt": datetime.now(timezone.utc)})
            except ResourceExistsError:
                return False
        return True

    def forget(self, portal_id: str, event_id: str) -> None:
        with storage_errors(TABLE_STORAGE):
            try:
                self._table.delete_entity(portal_id, _row_key(event_id))
            except ResourceNotFoundError:
                pass
