"""The ``validation-requests`` work queue: many sends in parallel, optional visibility delays.

Storage queues have no batch send; fan-out sends concurrently over one pooled connection set,
which is what lets 10,000 messages go out in seconds.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from azure.core.exceptions import AzureError
from azure.storage.queue import QueueClient

from shared.adapters.storage import QUEUE_STORAGE, ping_queue, unavailable
from shared.domain.jobs import WorkMessage
from shared.domain.ports import WorkQueue

SEND_CONCURRENCY = 32


class QueueWorkQueue(WorkQueue):
    """:class:`WorkQueue` on Storage queues; one round trip per message."""

    def __init__(self, queue: QueueClient, poison: QueueClient | None = None):
        self._queue = queue
        self._poison = poison

    def ping(self) -> None:
        """The work queue only: the poison queue is written rarely and its failure is logged."""
        ping_queue(self._queue)

    def send(self, message: WorkMessage, *, delay_seconds: int = 0) -> None:
        try:
            self._queue.send_message(message.to_json(), visibility_timeout=max(0, int(delay_seconds)) or None)
        except AzureError as exc:
            raise unavailable(exc, QUEUE_STORAGE) from exc

    def send_many(self, messages: Iterable[tuple[WorkMessage, int]]) -> int:
        """Send (message, delay seconds) pairs concurrently; returns how many were sent."""
        pairs = list(messages)
        with ThreadPoolExecutor(SEND_CONCURRENCY) as pool:
            list(pool.map(lambda pair: self.send(pair[0], delay_seconds=pair[1]), pairs))
        return len(pairs)

    def backlog(self) -> int:
        """The queue's ``x-ms-approximate-messages-count`` (Get Queue Metadata)."""
        try:
            return int(self._queue.get_queue_properties().approximate_message_count or 0)
        except AzureError as exc:
            raise unavailable(exc, QUEUE_STORAGE) from exc

    def send_to_poison(self, text: str) -> None:
        """Park a message that can never be processed, as the host would after maxDequeueCount."""
        if self._poison is None:
            raise RuntimeError("no poison queue configured")
        try:
            self._poison.send_message(text)
        except AzureError as exc:
            raise unavailable(exc, QUEUE_STORAGE) from exc
