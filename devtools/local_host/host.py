"""``LocalHost``: the in-process local Functions host (its own event loop on a background thread)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from datetime import datetime, timezone
from typing import Any, Awaitable, Mapping

from aiohttp import web

from devtools.local_host.host_config import HostConfig
from devtools.local_host.indexing import (HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, IndexedFunction,
                                          index_app)
from devtools.local_host.invocation import InvocationLog, InvocationRecord, Invoker
from devtools.local_host.queues import (DEFAULT_MESSAGE_LEASE, QueueClients, QueueListener, QueueOutputSink,
                                        connection_string, direct_invocation)
from devtools.local_host.routing import RouteTemplate, RouteTemplateError
from devtools.local_host.settings import AppSettings
from devtools.local_host.timers import ScheduleError, TimerListener, schedule_for, timer_datum
from devtools.local_host.web import HttpFrontEnd, methods_of, route_of
from devtools.local_host.workers import WorkerPool, app_spec_of, process_count

logger = logging.getLogger(__name__)

ADMIN_REASON = "This function was programmatically called via the host APIs."
DEFAULT_GRACE = 10.0
POLL_STOP_TIMEOUT = 2.0


def default_thread_count(settings: AppSettings) -> int:
    """``PYTHON_THREADPOOL_THREAD_COUNT``, else the worker's default (ThreadPoolExecutor's)."""
    configured = settings.get("PYTHON_THREADPOOL_THREAD_COUNT")
    return int(configured) if configured else min(32, (os.cpu_count() or 1) + 4)


class LocalHost:
    """Host a ``func.FunctionApp``: HTTP triggers, queue triggers against Storage/Azurite, timers.

    :param app: the ``FunctionApp`` (its functions are read with ``app.get_functions()``).
    :param settings: app settings; a name not given here is looked up in ``os.environ``.
    :param host_config: the parsed ``host.json`` (a dict) or a ``HostConfig``; defaults when None.
    :param port: HTTP port on ``127.0.0.1``; 0 picks a free one (see ``url``).
    :param script_root: ``context.function_directory``; the current directory by default.
    :param message_lease: how long a fetched queue message stays hidden while its function runs
        (renewed at half that); the real host uses 10 minutes.
    :param grace: default grace period of ``stop``.
    :param app_spec: ``module:attribute`` of ``app``, which worker processes import when
        ``FUNCTIONS_WORKER_PROCESS_COUNT`` is above 1; found in ``sys.modules`` when not given.
    """

    def __init__(self, app: Any, *, settings: Mapping[str, str] | None = None,
                 host_config: Mapping[str, Any] | HostConfig | None = None, port: int = 0,
                 bind: str = "127.0.0.1", script_root: str | None = None,
                 message_lease: float = DEFAULT_MESSAGE_LEASE, grace: float = DEFAULT_GRACE,
                 app_spec: str | None = None):
        self.settings = AppSettings(settings)
        self.worker_process_count = process_count(self.settings)
        self._app_spec = app_spec or (app_spec_of(app) if self.worker_process_count > 1 else None)
        self._script_root = script_root or os.getcwd()
        self.config = host_config if isinstance(host_config, HostConfig) else HostConfig.from_dict(host_config)
        self._requested_port, self._bind = port, bind
        self._message_lease, self._grace = message_lease, grace
        self.invocations = InvocationLog()
        functions, self.function_errors = index_app(app, self.settings, only=self.config.functions,
                                                    directory=self._script_root)
        self.functions = [fn for fn in functions if self._host_accepts(fn)]
        self._by_name = {fn.name.lower(): fn for fn in self.functions}
        self._schedules = {fn.name: schedule_for(fn, self.settings)
                           for fn in self.functions if fn.trigger_type == TIMER_TRIGGER}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._serving = False  # True between a complete start and the beginning of stop
        self._tasks: set[asyncio.Task] = set()
        self._workers: WorkerPool | None = None

    def _host_accepts(self, fn: IndexedFunction) -> bool:
        """Binding checks the host makes at start; a function that fails them is listed in error."""
        try:
            if fn.trigger_type == HTTP_TRIGGER:
                RouteTemplate.parse(route_of(fn))
            elif fn.trigger_type == TIMER_TRIGGER:
                schedule_for(fn, self.settings)
            for binding in fn.bindings:
                if binding["type"] in (QUEUE_TRIGGER, "queue"):
                    connection_string(self.settings, binding["connection"])
            return True
        except (RouteTemplateError, ScheduleError, LookupError) as exc:
            self.function_errors[fn.name] = f"cannot load the {fn.name} function: {exc}"
            logger.error("%s", self.function_errors[fn.name])
            return False

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the host is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._bind}:{self.port}"

    def start(self, *, timeout: float = 30.0) -> "LocalHost":
        """Start on a background thread; return once HTTP, queue and timer listeners run."""
        if self._thread is not None:
            raise RuntimeError("the host was already started")
        started: concurrent.futures.Future = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run_loop, args=(started,), name="local-host", daemon=True)
        self._thread.start()
        started.result(timeout)
        return self

    def _run_loop(self, started: concurrent.futures.Future) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as exc:
            started.set_exception(exc)
            self._loop.close()
            return
        started.set_result(None)
        self._loop.run_forever()
        leftovers = asyncio.all_tasks(self._loop)
        for task in leftovers:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        self._loop.close()

    def stop(self, grace: float | None = None) -> bool:
        """Stop accepting HTTP and fetching messages, let in-flight invocations finish for up to
        ``grace`` seconds, give unfinished queue messages back, and stop the thread.

        :return: True when nothing had to be abandoned.
        """
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return True
        grace = self._grace if grace is None else grace
        clean = asyncio.run_coroutine_threadsafe(self._stop(grace), self._loop).result(grace + 30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        return clean

    def __enter__(self) -> "LocalHost":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test and CLI helpers --------------------------------------------------------------------

    def fire(self, function_name: str, input: str | None = None) -> concurrent.futures.Future:
        """Run a non-HTTP function now, as ``POST /admin/functions/{name}`` does.

        :return: a future of the ``InvocationRecord`` (the admin API itself answers 202 at once).
        """
        if not self._serving:
            raise RuntimeError("the host is not running")
        fn = self.function(function_name)
        if fn.trigger_type == HTTP_TRIGGER:
            raise ValueError(f"{fn.name} is HTTP-triggered: call its route")
        return asyncio.run_coroutine_threadsafe(self._fire(fn, input), self._loop)

    def function(self, name: str) -> IndexedFunction:
        try:
            return self._by_name[name.lower()]
        except KeyError:
            raise KeyError(f"no function named {name!r}; loaded: {[f.name for f in self.functions]}, "
                           f"in error: {self.function_errors}") from None

    def describe(self) -> list[str]:
        """One line per function, like ``func start`` prints them."""
        lines = []
        for fn in self.functions:
            if fn.trigger_type == HTTP_TRIGGER:
                methods = ",".join(sorted(methods_of(fn) or {"ANY"}))
                prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
                lines.append(f"{fn.name}: [{methods}] {self.url}{prefix}/{route_of(fn).lstrip('/')}")
            elif fn.trigger_type == QUEUE_TRIGGER:
                lines.append(f"{fn.name}: queueTrigger (queue '{fn.trigger['queueName']}')")
            else:
                lines.append(f"{fn.name}: timerTrigger (schedule '{self._schedules[fn.name].expression}')")
        return lines

    # -- on the host's loop ----------------------------------------------------------------------

    def _spawn(self, coro: Awaitable) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _fire(self, fn: IndexedFunction, input: str | None) -> InvocationRecord:
        if fn.trigger_type == QUEUE_TRIGGER:
            datum, metadata = direct_invocation(fn.trigger, "" if input is None else str(input))
        else:
            schedule = self._schedules[fn.name]
            now = datetime.now(timezone.utc)
            datum, metadata = timer_datum(schedule, last=None, next_=schedule.next_after(now),
                                          past_due=False), None
        return await self._spawn(self._invoker.invoke(fn, datum, metadata=metadata, reason=ADMIN_REASON))

    async def _fire_and_forget(self, fn: IndexedFunction, input: str | None) -> None:
        self._spawn(self._fire(fn, input))

    async def _start(self) -> None:
        workers = default_thread_count(self.settings)
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="local-host-worker")
        if self.worker_process_count > 1:  # every function runs there (async ones on each process's own loop)
            pool = WorkerPool(self.worker_process_count, app_spec=self._app_spec,
                              settings=self.settings.explicit, only=self.config.functions,
                              directory=self._script_root, threads=workers)
            try:
                self._workers = await asyncio.to_thread(pool.start, asyncio.get_running_loop())
            except BaseException:
                self._executor.shutdown(wait=False)
                raise
        self._clients = QueueClients(self.settings)
        self._invoker = Invoker(executor=self._executor, log=self.invocations, workers=self._workers,
                                sinks={"queue": QueueOutputSink(self._clients, self.config.queues)})
        front_end = HttpFrontEnd(self.functions, route_prefix=self.config.route_prefix, settings=self.settings,
                                 invoker=self._invoker, fire=self._fire_and_forget,
                                 is_serving=lambda: self._serving,
                                 custom_headers=self.config.custom_headers)
        # Bind the port first: if that fails, no message has been fetched yet.
        self._runner = web.AppRunner(front_end.application(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self._bind, self._requested_port)
        try:
            await self._site.start()
        except OSError:
            await self._runner.cleanup()
            self._executor.shutdown(wait=False)
            if self._workers is not None:
                await asyncio.to_thread(self._workers.stop, clean=True)
            raise
        self._port = self._runner.addresses[0][1]
        self._queue_listeners = [
            QueueListener(fn, clients=self._clients, options=self.config.queues, invoke=self._invoker.invoke,
                          message_lease=self._message_lease)
            for fn in self.functions if fn.trigger_type == QUEUE_TRIGGER]
        self._pollers = [asyncio.create_task(listener.run(), name=f"poll:{listener.fn.name}")
                         for listener in self._queue_listeners]
        self._timer_tasks = [
            asyncio.create_task(TimerListener(fn, self._schedules[fn.name], self._invoker.invoke,
                                              self._spawn).run(), name=f"timer:{fn.name}")
            for fn in self.functions if fn.trigger_type == TIMER_TRIGGER]
        self._serving = True
        if not self.settings.keys and any(fn.trigger_type == HTTP_TRIGGER for fn in self.functions):
            logger.warning("LOCAL_FUNCTION_KEY is not set: function- and admin-level routes answer 401")
        logger.info("Local Functions host listening on %s (%d functions, %s%d worker threads)", self.url,
                    len(self.functions), f"{self.worker_process_count} worker processes x "
                    if self._workers is not None else "", workers)

    async def _stop(self, grace: float) -> bool:
        self._serving = False
        await self._site.stop()
        for listener in self._queue_listeners:
            listener.stop_fetching()
        for task in self._timer_tasks:
            task.cancel()
        # A poll in progress may finish (its messages are then processed and drained) ...
        await asyncio.wait(self._pollers, timeout=POLL_STOP_TIMEOUT) if self._pollers else None
        for task in self._pollers:  # ... but one stuck on an unreachable account is abandoned.
            task.cancel()
        await asyncio.gather(*self._pollers, *self._timer_tasks, return_exceptions=True)
        clean = await self._invoker.wait_idle(grace)
        if not clean:
            logger.warning("Stopping with %d invocation(s) still running after the %.1fs grace period: "
                           "their queue messages are given back", self._invoker.active, grace)
            for task in self._tasks:
                task.cancel()
            for listener in self._queue_listeners:
                listener.abandon()
        # Messages whose invocation finished are being deleted, released or moved to poison.
        settling = set(self._tasks).union(*(listener.in_flight for listener in self._queue_listeners))
        if settling:
            await asyncio.wait(settling, timeout=10)
        await self._runner.cleanup()
        await self._clients.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._workers is not None:  # nothing runs there any more, unless abandoned: then kill
            await asyncio.to_thread(self._workers.stop, clean=clean)
        logger.info("Local Functions host stopped%s", "" if clean else " (invocations abandoned)")
        return clean
