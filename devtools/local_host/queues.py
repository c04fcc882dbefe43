"""Storage queue trigger and output binding with the Functions host's semantics.

Listener (the WebJobs ``QueueListener`` / ``QueueProcessor`` behaviour):

- fetch up to ``batchSize`` messages, hidden for a lease that is renewed at half its length while
  the function runs (the host's 10 minutes by default); fetch again when the number in flight has
  dropped to ``newBatchThreshold`` or below;
- poll with randomised exponential back-off from 100 ms up to ``maxPollingInterval`` while the
  queue is empty (or does not exist yet);
- success: delete the message. Failure: when its dequeue count has reached ``maxDequeueCount``,
  copy it to ``<queue>-poison`` (created if needed) and delete it; otherwise make it visible again
  after ``visibilityTimeout``. A message fetched with a dequeue count already above the maximum,
  or whose content is not valid base64, goes to the poison queue without an invocation.
- stop: no more fetching; an invocation that the host abandons at the end of the grace period
  gives its message back (visible at once). A message is deleted only after its invocation
  succeeded or after it was copied to the poison queue, so none is ever lost.

``messageEncoding: base64`` (the default): content is base64-decoded for the function, and the
output binding writes base64 text, as the real host does.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.meta import Datum
from azure.storage.queue.aio import QueueClient

from devtools.local_host.host_config import QueuesOptions
from devtools.local_host.indexing import IndexedFunction
from devtools.local_host.invocation import InvocationRecord
from devtools.local_host.settings import AppSettings

logger = logging.getLogger(__name__)

POISON_SUFFIX = "-poison"
MIN_POLLING_INTERVAL = 0.1  # the host's QueuePollingIntervals.Minimum
DEFAULT_MESSAGE_LEASE = 600.0  # the host's 10-minute visibility while a message is processed

Invoke = Callable[..., Awaitable[InvocationRecord]]


def connection_string(settings: AppSettings, connection: str) -> str:
    """Resolve a binding's ``connection`` the way the host does (``X``, then ``AzureWebJobsX``)."""
    for name in (connection, f"AzureWebJobs{connection}"):
        value = settings.get(name)
        if value:
            return value
    raise LookupError(f"Storage connection '{connection}' is not set: add a connection string setting "
                      f"named '{connection}' (identity-based connections are not supported locally)")


def encode_content(payload: bytes, encoding: str) -> str:
    return base64.b64encode(payload).decode("ascii") if encoding == "base64" else payload.decode("utf-8")


def decode_content(content: str, encoding: str) -> bytes:
    """:raises ValueError: when base64 content cannot be decoded."""
    if encoding != "base64":
        return content.encode("utf-8")
    try:
        return base64.b64decode("".join(content.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"message content is not valid base64: {exc}") from exc


def output_payloads(datum: Datum) -> list[bytes]:
    """The messages an encoded output value stands for (a JSON array is one message per item)."""
    if datum.type == "string":
        return [datum.value.encode("utf-8")]
    if datum.type == "bytes":
        return [bytes(datum.value)]
    if datum.type == "json":
        value = json.loads(datum.value)
        items = value if isinstance(value, list) else [value]
        return [(item if isinstance(item, str) else json.dumps(item)).encode("utf-8") for item in items]
    raise TypeError(f"a queue output cannot take a {datum.type!r} value")


def trigger_datum(binding: dict[str, Any], payload: bytes) -> Datum:
    if str(binding.get("dataType", "")).upper() == "BINARY":
        return Datum(payload, "bytes")
    return Datum(payload.decode("utf-8", errors="replace"), "string")


def _iso(value: datetime | None) -> Datum | None:
    return Datum(value.astimezone(timezone.utc).isoformat(), "string") if value else None


def trigger_metadata(message_id: str, dequeue_count: int, inserted_on: datetime | None,
                     expires_on: datetime | None, next_visible_on: datetime | None,
                     pop_receipt: str | None) -> dict[str, Datum]:
    metadata = {"Id": Datum(message_id, "string"), "DequeueCount": Datum(dequeue_count, "int"),
                "InsertionTime": _iso(inserted_on), "ExpirationTime": _iso(expires_on),
                "NextVisibleTime": _iso(next_visible_on),
                "PopReceipt": Datum(pop_receipt, "string") if pop_receipt else None}
    return {k: v for k, v in metadata.items() if v is not None}


def direct_invocation(binding: dict[str, Any], body: str) -> tuple[Datum, dict[str, Datum]]:
    """Trigger value for an admin-API invocation: the input is the message body (no real message)."""
    now = datetime.now(timezone.utc)
    metadata = trigger_metadata(str(uuid.uuid4()), 0, now, now + timedelta(days=7), now, None)
    return trigger_datum(binding, body.encode("utf-8")), metadata


class QueueClients:
    """One async ``QueueClient`` per (connection, queue); closes them all at the end."""

    def __init__(self, settings: AppSettings):
        self._settings = settings
        self._clients: dict[tuple[str, str], QueueClient] = {}
        self._created: set[tuple[str, str]] = set()

    def get(self, connection: str, queue_name: str) -> QueueClient:
        key = (connection, queue_name)
        if key not in self._clients:
            self._clients[key] = QueueClient.from_connection_string(
                connection_string(self._settings, connection), queue_name)
        return self._clients[key]

    async def ensure(self, connection: str, queue_name: str) -> QueueClient:
        """The client, after creating the queue if this host has not made sure of it yet."""
        client = self.get(connection, queue_name)
        if (connection, queue_name) not in self._created:
            try:
                await client.create_queue()
            except ResourceExistsError:
                pass
            self._created.add((connection, queue_name))
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


class QueueOutputSink:
    """The ``queue`` output binding: sends what the function set, once it has succeeded."""

    def __init__(self, clients: QueueClients, options: QueuesOptions):
        self._clients, self._options = clients, options

    async def __call__(self, binding: dict[str, Any], datum: Datum) -> None:
        client = await self._clients.ensure(binding["connection"], binding["queueName"])
        for payload in output_payloads(datum):
            await client.send_message(encode_content(payload, self._options.message_encoding))


class Backoff:
    """The host's ``RandomizedExponentialBackoffStrategy`` between empty polls."""

    def __init__(self, maximum: float, minimum: float = MIN_POLLING_INTERVAL):
        self.minimum = min(minimum, maximum)
        self.maximum = maximum
        self.current = self.minimum
        self._exponent = 0

    def next(self, found: bool) -> float:
        if found:
            self.current, self._exponent = self.minimum, 0
        elif self.current < self.maximum:
            self._exponent += 1
            delta = (2 ** self._exponent - 1) * random.uniform(0.8, 1.2) * self.minimum
            self.current = min(self.minimum + delta, self.maximum)
        return self.current


@dataclass
class _Lease:
    """A received message that this host holds (its current pop receipt)."""

    message: Any
    pop_receipt: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    settled: bool = False


class QueueListener:
    """Polls one queue for one queue-triggered function."""

    def __init__(self, fn: IndexedFunction, *, clients: QueueClients, options: QueuesOptions,
                 invoke: Invoke, message_lease: float = DEFAULT_MESSAGE_LEASE):
        self.fn = fn
        self.queue_name: str = fn.trigger["queueName"]
        self._connection: str = fn.trigger["connection"]
        self._clients, self._options, self._invoke = clients, options, invoke
        self._lease_seconds = max(1, int(message_lease))
        self._backoff = Backoff(options.max_polling_interval)
        self._stopping = asyncio.Event()
        self.in_flight: set[asyncio.Task] = set()  # every message being processed or completed
        self._invoking: set[asyncio.Task] = set()  # those whose function is still running
        self._poll_failing = False

    @property
    def poison_queue_name(self) -> str:
        return self.queue_name + POISON_SUFFIX

    def stop_fetching(self) -> None:
        self._stopping.set()

    def abandon(self) -> None:
        """Give up on invocations still running: their messages become visible again at once."""
        for task in self._invoking:
            task.cancel()

    async def run(self) -> None:
        """Poll until ``stop_fetching``; processing tasks are left in ``in_flight``."""
        client = self._clients.get(self._connection, self.queue_name)
        threshold = self._options.effective_new_batch_threshold
        while not self._stopping.is_set():
            while len(self.in_flight) > threshold and not self._stopping.is_set():
                await self._wait_any(self.in_flight)
            if self._stopping.is_set():
                break
            messages = await self._receive(client)
            for message in messages:
                task = asyncio.create_task(self._process(message), name=f"queue:{self.fn.name}:{message.id}")
                self.in_flight.add(task)
                task.add_done_callback(self.in_flight.discard)
            delay = self._backoff.next(found=bool(messages))
            await self._wait_any(set(), timeout=delay)

    async def _wait_any(self, tasks: set[asyncio.Task], timeout: float | None = None) -> None:
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait(tasks | {stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()

    async def _receive(self, client: QueueClient) -> list:
        """One batch; no SDK retries (the next poll is the retry), one warning per outage."""
        try:
            pages = client.receive_messages(messages_per_page=self._options.batch_size,
                                            visibility_timeout=self._lease_seconds, retry_total=0).by_page()
            messages = [m async for m in await pages.__anext__()]
        except (ResourceNotFoundError, StopAsyncIteration):
            messages = []  # the queue does not exist (yet): keep polling, as the host does
        except Exception as exc:
            log = logger.debug if self._poll_failing else logger.warning
            log("Polling queue '%s' failed (retrying with back-off): %s", self.queue_name, exc)
            self._poll_failing = True
            return []
        if self._poll_failing:
            logger.info("Polling queue '%s' works again", self.queue_name)
            self._poll_failing = False
        return messages

    async def _process(self, message: Any) -> None:
        lease = _Lease(message, message.pop_receipt)
        renewer = asyncio.create_task(self._renew(lease))
        self._invoking.add(asyncio.current_task())
        try:
            record = await self._invoke_for(lease)
        except asyncio.CancelledError:
            await self._settle(lease, renewer, self._release(lease, 0, "the host stopped"))
            raise
        finally:
            self._invoking.discard(asyncio.current_task())
        if record is None:
            return await self._settle(lease, renewer, self._to_poison(lease, "it cannot be processed"))
        if record.succeeded:
            return await self._settle(lease, renewer, self._delete(lease))
        if message.dequeue_count >= self._options.max_dequeue_count:
            reason = f"it has reached MaxDequeueCount of {self._options.max_dequeue_count}"
            return await self._settle(lease, renewer, self._to_poison(lease, reason))
        await self._settle(lease, renewer, self._release(lease, self._options.visibility_timeout,
                                                           "the invocation failed"))

    async def _invoke_for(self, lease: _Lease) -> InvocationRecord | None:
        """Invoke the function; ``None`` when the message goes to the poison queue unprocessed."""
        message = lease.message
        if message.dequeue_count > self._options.max_dequeue_count:
            return None  # the host's BeginProcessingMessage check (e.g. after crashes mid-invocation)
        try:
            payload = decode_content(message.content, self._options.message_encoding)
        except ValueError as exc:
            logger.error("Message %s on queue '%s' cannot be decoded (%s)", message.id, self.queue_name, exc)
            return None
        metadata = trigger_metadata(message.id, message.dequeue_count, message.inserted_on,
                                    message.expires_on, message.next_visible_on, lease.pop_receipt)
        return await self._invoke(self.fn, trigger_datum(self.fn.trigger, payload), metadata=metadata,
                                  reason=f"New queue message detected on '{self.queue_name}'.")

    async def _settle(self, lease: _Lease, renewer: asyncio.Task, action: Awaitable[None]) -> None:
        async with lease.lock:  # lets a renewal in progress finish, so the pop receipt is current
            lease.settled = True
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
        try:
            await action
        except Exception:
            logger.exception("Completing message %s on queue '%s' failed; it will be delivered again",
                             lease.message.id, self.queue_name)

    async def _renew(self, lease: _Lease) -> None:
        """Keep the message hidden while the function runs (the host's visibility renewal)."""
        client = self._clients.get(self._connection, self.queue_name)
        while True:
            await asyncio.sleep(self._lease_seconds / 2)
            async with lease.lock:
                if lease.settled:
                    return
                try:
                    updated = await client.update_message(lease.message.id, pop_receipt=lease.pop_receipt,
                                                          visibility_timeout=self._lease_seconds)
                    lease.pop_receipt = updated.pop_receipt
                except Exception:
                    logger.exception("Renewing message %s on queue '%s' failed", lease.message.id,
                                     self.queue_name)

    async def _delete(self, lease: _Lease) -> None:
        client = self._clients.get(self._connection, self.queue_name)
        await client.delete_message(lease.message.id, pop_receipt=lease.pop_receipt)

    async def _release(self, lease: _Lease, delay: float, why: str) -> None:
        client = self._clients.get(self._connection, self.queue_name)
        await client.update_message(lease.message.id, pop_receipt=lease.pop_receipt,
                                    visibility_timeout=int(round(delay)))
        logger.debug("Message %s on queue '%s' visible again in %ss: %s", lease.message.id,
                     self.queue_name, int(round(delay)), why)

    async def _to_poison(self, lease: _Lease, reason: str) -> None:
        logger.warning("Message %s on queue '%s': %s. Moving message to queue '%s'.", lease.message.id,
                       self.queue_name, reason, self.poison_queue_name)
        poison = await self._clients.ensure(self._connection, self.poison_queue_name)
        await poison.send_message(lease.message.content)
        await self._delete(lease)
