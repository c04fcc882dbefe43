"""Running one invocation the way the Python worker does.

Trigger values reach the function through the azure-functions library's own converters
(``func.get_binding_registry()``: ``Datum`` in, ``Datum`` out; see ``function_call.py``), so
``func.HttpRequest``, ``func.QueueMessage`` and ``func.TimerRequest`` are the library's objects,
and outputs are encoded exactly as the worker encodes them before the host acts on them. Sync
functions run in a thread pool, async functions on the host's event loop; with
``FUNCTIONS_WORKER_PROCESS_COUNT`` above 1, every function runs in a worker process instead
(``workers.py``: sync ones in its thread pool, async ones on its own event loop), which returns
the encoded outputs.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import threading
import time
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

from azure.functions.meta import Datum

from devtools.local_host.function_call import arguments, call_with_thread_local, encoded_outputs
from devtools.local_host.indexing import IndexedFunction

if TYPE_CHECKING:
    from devtools.local_host.workers import WorkerPool

logger = logging.getLogger(__name__)

OutputSink = Callable[[dict[str, Any], Datum], Awaitable[None]]


@dataclass
class InvocationRecord:
    """One finished invocation, as the host's "Executed" log line describes it."""

    function_name: str
    invocation_id: str
    trigger: str
    succeeded: bool
    duration_ms: float
    started_at: datetime
    error: BaseException | None = None
    http_response: Datum | None = field(default=None, repr=False)
    worker_pid: int | None = None  # the process the function ran in (None: it did not run)


class InvocationLog:
    """Thread-safe list of finished invocations that tests can wait on."""

    def __init__(self) -> None:
        self._records: list[InvocationRecord] = []
        self._changed = threading.Condition()

    def append(self, record: InvocationRecord) -> None:
        with self._changed:
            self._records.append(record)
            self._changed.notify_all()

    def list(self, function_name: str | None = None) -> list[InvocationRecord]:
        with self._changed:
            return [r for r in self._records if function_name in (None, r.function_name)]

    def wait_for(self, function_name: str, count: int = 1, *, timeout: float = 10.0,
                 succeeded: bool | None = None) -> list[InvocationRecord]:
        """Block until ``count`` invocations of ``function_name`` (optionally only those that
        succeeded or failed) have finished; return them.

        :raises TimeoutError: with what did happen, when they do not finish in time.
        """
        def matching() -> list[InvocationRecord]:
            return [r for r in self._records if r.function_name == function_name
                    and succeeded in (None, r.succeeded)]

        with self._changed:
            if not self._changed.wait_for(lambda: len(matching()) >= count, timeout):
                raise TimeoutError(f"{len(matching())} of {count} invocations of {function_name} finished "
                                   f"within {timeout}s; all so far: {self._records}")
            return matching()


class Invoker:
    """Runs invocations and tracks how many are in flight (for a graceful stop)."""

    def __init__(self, *, executor: Executor, sinks: Mapping[str, OutputSink], log: InvocationLog,
                 workers: "WorkerPool | None" = None):
        self._executor = executor
        self._workers = workers  # every function runs there when set (FUNCTIONS_WORKER_PROCESS_COUNT > 1)
        self._sinks = dict(sinks)
        self.log = log
        self._active = 0
        self._idle: asyncio.Event | None = None

    @property
    def active(self) -> int:
        return self._active

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no invocation is running; ``False`` when ``timeout`` passed first."""
        if self._active == 0:
            return True
        try:
            await asyncio.wait_for(self._idle_event().wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def _idle_event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
        return self._idle

    async def invoke(self, fn: IndexedFunction, datum: Datum, *,
                     metadata: Mapping[str, Datum] | None = None, reason: str = "") -> InvocationRecord:
        """Invoke ``fn`` with the trigger value ``datum``; flush its output bindings on success.

        :return: the record; ``record.http_response`` is the encoded HTTP output, if any.
        Never raises for a function failure (it is in ``record.error``); cancellation propagates.
        """
        invocation_id = str(uuid.uuid4())
        started, clock = datetime.now(timezone.utc), time.perf_counter()
        self._active += 1
        self._idle_event().clear()
        logger.debug("Executing 'Functions.%s' (Reason='%s', Id=%s)", fn.name, reason, invocation_id)
        error: BaseException | None = None
        http_response = None
        ran_in: list[int] = []
        try:
            http_response = await self._run(fn, invocation_id, datum, metadata, ran_in)
        except asyncio.CancelledError:
            error = asyncio.CancelledError("the host stopped before the invocation finished")
            raise
        except Exception as exc:  # the function's (or a binding's) failure is the invocation's outcome
            error = exc
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle_event().set()
            record = InvocationRecord(fn.name, invocation_id, fn.trigger_type, error is None,
                                      round((time.perf_counter() - clock) * 1000, 1), started, error,
                                      http_response, ran_in[0] if ran_in else None)
            self._log(record)
            self.log.append(record)
        return record

    async def _run(self, fn: IndexedFunction, invocation_id: str, datum: Datum,
                   metadata: Mapping[str, Datum] | None, ran_in: list[int]) -> Datum | None:
        if self._workers is not None:  # sync or async: the worker process runs it as the worker does
            try:
                encoded, pid = await self._workers.invoke(fn.name, invocation_id, datum, metadata)
            except Exception as exc:
                ran_in.append(getattr(exc, "worker_pid", None))
                raise
            ran_in.append(pid)
            outputs = [(fn.binding_for(name), value) for name, value in encoded]
        else:
            ran_in.append(os.getpid())
            outputs = await self._run_here(fn, invocation_id, datum, metadata)
        http_response = None
        for binding, value in outputs:
            if binding["type"] == "http":  # the host writes it to the HTTP response, not to a store
                http_response = value
            else:
                await self._sinks[binding["type"]](binding, value)
        return http_response

    async def _run_here(self, fn: IndexedFunction, invocation_id: str, datum: Datum,
                        metadata: Mapping[str, Datum] | None) -> list[tuple[dict[str, Any], Datum]]:
        kwargs, outs, context = arguments(fn, invocation_id, datum, metadata)
        if fn.is_async:  # on the loop, as the worker does: never in the sync functions' pool
            context.thread_local_storage.invocation_id = context.invocation_id
            result = await fn.func(**kwargs)
        else:
            call = functools.partial(call_with_thread_local, context, fn.func, kwargs)
            result = await asyncio.get_running_loop().run_in_executor(
                self._executor, contextvars.copy_context().run, call)
        return encoded_outputs(fn, outs, result)

    @staticmethod
    def _log(record: InvocationRecord) -> None:
        extra = {"invocation_id": record.invocation_id, "function_name": record.function_name}
        line = ("Executed 'Functions.%s' (%s, Id=%s, Trigger=%s, Duration=%sms)",
                record.function_name, "Succeeded" if record.succeeded else "Failed",
                record.invocation_id, record.trigger, record.duration_ms)
        if record.succeeded:
            logger.info(*line, extra=extra)
        else:
            logger.error(*line, extra=extra, exc_info=(type(record.error), record.error,
                                                       record.error.__traceback__))
