"""The ``outcome-explanations`` queue: follow-ups that look for a failed test's sign-in log entry."""
from __future__ import annotations

from azure.core.exceptions import AzureError
from azure.storage.queue import QueueClient

from shared.adapters.storage import QUEUE_STORAGE, ping_queue, unavailable
from shared.domain.diagnosis import ExplainMessage
from shared.domain.ports import ExplanationQueue


class QueueExplanationQueue(ExplanationQueue):
    """:class:`ExplanationQueue` on a Storage queue; one round trip per look."""

    def __init__(self, queue: QueueClient):
        self._queue = queue

    def ping(self) -> None:
        ping_queue(self._queue)

    def send(self, message: ExplainMessage, *, delay_seconds: int) -> None:
        try:
            self._queue.send_message(message.to_json(), visibility_timeout=max(0, int(delay_seconds)) or None)
        except AzureError as exc:
            raise unavailable(exc, QUEUE_STORAGE) from exc
