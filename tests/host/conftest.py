"""Helpers shared by the host tests (fixtures proper live in tests/fixtures/local_host.py)."""
from __future__ import annotations

import base64
import uuid

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from tests.fixtures.local_host import unique_queue_name
from tests.waiting import wait_until


class Queues:
    """Test-side access to Azurite queues, speaking the host's base64 wire format explicitly."""

    def __init__(self, connection_string: str):
        self._cs = connection_string

    def client(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(self._cs, name)

    def send(self, name: str, text: str) -> str:
        client = self.client(name)
        try:
            client.create_queue()
        except ResourceExistsError:
            pass
        return client.send_message(base64.b64encode(text.encode("utf-8")).decode("ascii")).id

    def raw(self, name: str) -> list:
        """Visible messages, undecoded, without hiding them."""
        try:
            return list(self.client(name).peek_messages(max_messages=32))
        except ResourceNotFoundError:
            return []

    def texts(self, name: str) -> list[str]:
        return [base64.b64decode(m.content).decode("utf-8") for m in self.raw(name)]

    def total(self, name: str) -> int:
        """Visible and invisible messages."""
        try:
            return self.client(name).get_queue_properties().approximate_message_count
        except ResourceNotFoundError:
            return 0

    def wait_for_texts(self, name: str, count: int, *, timeout: float = 10.0) -> list[str]:
        """The visible texts, once there are at least ``count``."""
        def enough() -> list[str]:
            texts = self.texts(name)
            assert len(texts) >= count, texts
            return texts

        return wait_until(enough, timeout=timeout, what=f"{count} visible message(s) on {name}")

    def send_after(self, name: str, text: str, seconds: int) -> str:
        """Send a message that becomes visible only after ``seconds`` (a marker that proves the host
        polled the queue that much later)."""
        return self.client(name).send_message(base64.b64encode(text.encode("utf-8")).decode("ascii"),
                                              visibility_timeout=seconds).id


@pytest.fixture
def queues(storage_connection_string) -> Queues:
    return Queues(storage_connection_string)


@pytest.fixture
def names() -> dict[str, str]:
    """Fresh queue names for the sample app's %SETTING% expressions, and a unique tag."""
    return {"WORK_QUEUE": unique_queue_name("work"), "OUT_QUEUE": unique_queue_name("out"),
            "TEXT_QUEUE": unique_queue_name("text"), "TICK_SCHEDULE": "0 0 0 1 1 *",
            "tag": uuid.uuid4().hex[:8]}


def settings_of(names: dict[str, str], **extra: str) -> dict[str, str]:
    return {**{k: v for k, v in names.items() if k != "tag"}, **extra}
