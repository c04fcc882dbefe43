"""Bounded executors, one per class of blocking work, for the app's ``async def`` triggers.

Why: the Python worker runs a sync function in its one thread pool (``PYTHON_THREADPOOL_THREAD_COUNT``
threads) and an ``async def`` function on its event loop (azure-functions-python-worker
``azure_functions_worker/dispatcher.py``, ``_handle__invocation_request``: ``if fi.is_async: await
self._run_async_func(...)`` else ``await self._loop.run_in_executor(self._sync_call_tp, ...)``;
Microsoft Learn, "Improve scale and performance of Python apps in Azure Functions"
(functions-python-scale-performance-reference): "A function without the async keyword is run
automatically in an asyncio thread-pool. Number of threads is defined by
PYTHON_THREADPOOL_THREAD_COUNT", "the worker shares the event loop with your async function",
"Don't declare your function as async without a corresponding await"). A Validation Test blocks on Entra, SharePoint, Graph and
Key Vault for seconds when they are slow; as sync functions, a storm of them took every thread of
that pool and an unrelated ``GET profile`` waited behind them (issue 12, point 4).

So the triggers that run Validation Tests are ``async def`` and hand their blocking service call to
:func:`run_blocking` with their class of work: each class has its own bounded
``ThreadPoolExecutor`` (created on first use, one per process), so a class can only queue behind
itself, and the worker's pool stays free for the quick sync triggers. The event loop only awaits
(never blocks): the sync call, parsing included, runs on the class's threads.

Classes and their sizes (threads per worker process):

- :data:`HTTP_VALIDATION`: ``validateProfile`` and ``validationTest`` (an admin waits for them);
  ``HTTP_VALIDATION_THREAD_COUNT``, default 16;
- :data:`QUEUE_VALIDATION`: the ``validation-requests`` worker (batch and scheduled jobs);
  ``QUEUE_VALIDATION_THREAD_COUNT``, default 24: a message is a work group of up to 16 profiles,
  each on a thread, and the host keeps up to 12 messages (host.json ``batchSize`` 8 +
  ``newBatchThreshold`` 4) in flight, so two worker processes' 48 threads are always busy with
  another batch of messages in reserve. A 500-profile job therefore never delays an interactive
  Validation Test, nor the other way round.

Past its size, a class's calls wait in its executor's queue (in order), not in another class's.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, TypeVar

from shared.config import setting

T = TypeVar("T")


@dataclass(frozen=True)
class WorkClass:
    """A class of blocking work: its name (thread names), the setting that sizes its executor, how
    that setting is read, and the size when it is not set."""

    name: str
    setting: str
    configured: Callable[[], str | None]
    default_threads: int

    def threads(self) -> int:
        """The executor's size: the setting when it is a positive integer, else the default."""
        try:
            value = int(self.configured() or "")
        except ValueError:
            return self.default_threads
        return value if value >= 1 else self.default_threads


# Read from the environment (literal names, as the settings check wants) until the settings are
# declared in shared/config.py SETTINGS and reach this module through Settings.
HTTP_VALIDATION = WorkClass("http-validation", "HTTP_VALIDATION_THREAD_COUNT",
                            lambda: setting("HTTP_VALIDATION_THREAD_COUNT"), 16)
QUEUE_VALIDATION = WorkClass("queue-validation", "QUEUE_VALIDATION_THREAD_COUNT",
                             lambda: setting("QUEUE_VALIDATION_THREAD_COUNT"), 24)

_executors: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def executor(work: WorkClass) -> ThreadPoolExecutor:
    """The process's executor for ``work`` (created on first use)."""
    with _lock:
        pool = _executors.get(work.name)
        if pool is None:
            pool = _executors[work.name] = ThreadPoolExecutor(work.threads(), thread_name_prefix=work.name)
        return pool


async def run_blocking(work: WorkClass, function: Callable[..., T], *args, **kwargs) -> T:
    """Run the blocking ``function(*args, **kwargs)`` on ``work``'s executor and await its result
    (the caller's context variables go with it, as with :func:`asyncio.to_thread`).

    :return: what ``function`` returned; its exception is raised here.
    """
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor(work), call)


def shutdown(*, wait: bool = False) -> None:
    """Stop every executor (tests; a worker process simply exits)."""
    with _lock:
        pools = list(_executors.values())
        _executors.clear()
    for pool in pools:
        pool.shutdown(wait=wait, cancel_futures=True)
