"""``FUNCTIONS_WORKER_PROCESS_COUNT``: every function in N language worker processes.

With the setting above 1 (Azure allows 1-10), the host process keeps HTTP, queue polling, timers,
output bindings and the invocation log, and hands each invocation, of a sync or an async function,
to one of N worker processes (the one with the fewest invocations in flight, round-robin among
equals), as the real host spreads invocations over its language workers. Each worker process
imports the app once (``spawn`` start method: a fresh interpreter, nothing inherited but the
environment), with the host's explicit app settings added to its environment as on Azure, indexes
it with the same settings, and runs invocations as the Python worker's dispatcher does
(azure-functions-python-worker ``azure_functions_worker/dispatcher.py``,
``_handle__invocation_request``: ``if fi.is_async: await self._run_async_func(...)`` on the worker's
event loop, else ``await self._loop.run_in_executor(self._sync_call_tp, ...)``): a sync function in
its own thread pool of ``PYTHON_THREADPOOL_THREAD_COUNT`` threads, an async one awaited on the
process's own event loop (one thread, started with the process), never in that pool. Trigger values
go there as ``Datum`` objects and come back as encoded outputs (``Datum``), through the same
converters as in process.

A function's exception comes back (pickled, with its remote traceback as ``__cause__``) and makes
the invocation Failed. Log records of the app are forwarded to the host's logging. Workers ignore
SIGINT/SIGTERM (a Ctrl-C reaches the whole process group): the host stops them after its graceful
stop, and a worker exits at once when the host's end of its pipe closes (the host died), so none
is left orphaned. A worker that dies fails its in-flight invocations and is replaced.
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import copy
import itertools
import logging
import multiprocessing
import multiprocessing.util  # noqa: F401  (its atexit hook must be registered before ours)
import os
import pickle
import queue
import signal
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

from azure.functions.meta import Datum

from devtools.local_host.function_call import arguments, call_with_thread_local, encoded_outputs
from devtools.local_host.settings import AppSettings

logger = logging.getLogger(__name__)

PROCESS_COUNT_SETTING = "FUNCTIONS_WORKER_PROCESS_COUNT"
MAX_PROCESS_COUNT = 10  # Azure's maximum
START_TIMEOUT = 60.0


def process_count(settings: AppSettings) -> int:
    """``FUNCTIONS_WORKER_PROCESS_COUNT`` (default 1).

    :raises ValueError: for a value that is not a whole number from 1 to 10.
    """
    configured = (settings.get(PROCESS_COUNT_SETTING) or "").strip()
    if not configured:
        return 1
    try:
        count = int(configured)
    except ValueError:
        raise ValueError(f"{PROCESS_COUNT_SETTING} must be a whole number, not {configured!r}") from None
    if not 1 <= count <= MAX_PROCESS_COUNT:
        raise ValueError(f"{PROCESS_COUNT_SETTING} must be between 1 and {MAX_PROCESS_COUNT}, not {count}")
    return count


def app_spec_of(app: Any) -> str:
    """``module:attribute`` under which ``app`` can be imported (a worker process imports it so).

    :raises LookupError: when no imported module holds ``app`` at its top level.
    """
    for name, module in list(sys.modules.items()):
        if module is None or name in ("__main__", "__mp_main__"):
            continue
        for attribute, value in list(getattr(module, "__dict__", {}).items()):
            if value is app:
                return f"{name}:{attribute}"
    raise LookupError("the FunctionApp is not a module-level attribute of an imported module: pass app_spec")


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (set as its ``__cause__``)."""

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class WorkerProcessError(RuntimeError):
    """A worker process exited (or could not start) while an invocation was running there."""


class RemoteException(RuntimeError):
    """Stands for a function's exception that cannot be sent back between processes as it is."""


# -- in the worker process ------------------------------------------------------------------------

class _ForwardingHandler(logging.Handler):
    """Sends the app's log records to the host, which hands them to its own logging."""

    def __init__(self, send) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        prepared = copy.copy(record)
        prepared.msg, prepared.args = record.getMessage(), None
        if record.exc_info and not record.exc_text:
            prepared.exc_text = logging.Formatter().formatException(record.exc_info)
        prepared.exc_info = None
        try:
            try:
                self._send(("log", prepared))
            except (pickle.PicklingError, TypeError, AttributeError):  # an unpicklable ``extra`` value
                prepared.__dict__ = {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
                                     for k, v in vars(prepared).items()}
                self._send(("log", prepared))
        except Exception:  # the host is gone; nothing to report it to
            pass


LOOP_THREAD_NAME = "local-host-process-loop"  # a worker process's event loop (not a "local-host-worker" thread)


def _function(functions: Mapping[str, Any], name: str) -> Any:
    fn = functions.get(name)
    if fn is None:
        raise LookupError(f"the worker process has no function named {name!r}")
    return fn


def _execute(functions: Mapping[str, Any], name: str, invocation_id: str, datum: Datum,
             metadata: Mapping[str, Datum] | None) -> list[tuple[str, Datum]]:
    """A sync function's call, in a thread of the worker process's pool."""
    fn = _function(functions, name)
    kwargs, outs, context = arguments(fn, invocation_id, datum, metadata)
    result = call_with_thread_local(context, fn.func, kwargs)
    return [(binding["name"], value) for binding, value in encoded_outputs(fn, outs, result)]


async def _execute_async(fn: Any, invocation_id: str, datum: Datum,
                         metadata: Mapping[str, Datum] | None) -> list[tuple[str, Datum]]:
    """An async function's call, awaited on the worker process's loop (as in process on the host's)."""
    kwargs, outs, context = arguments(fn, invocation_id, datum, metadata)
    context.thread_local_storage.invocation_id = context.invocation_id  # the loop's thread
    result = await fn.func(**kwargs)
    return [(binding["name"], value) for binding, value in encoded_outputs(fn, outs, result)]


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling both ways, else a ``RemoteException`` that says what it was."""
    if isinstance(exc, Exception):
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception:
            pass
    return RemoteException(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")


def _failure(exc: BaseException) -> bytes:
    remote = "".join(traceback.format_exception(exc))
    return pickle.dumps(("error", _portable(exc), remote, os.getpid()))


def _send_result(send, call_id: int, data: bytes) -> None:
    try:
        send(("result", call_id, data))
    except (OSError, ValueError):  # the host is gone
        pass


def _invoke_and_reply(send, functions, call_id: int, name: str, invocation_id: str, datum: Datum,
                      metadata: Mapping[str, Datum] | None) -> None:
    try:
        data = pickle.dumps(("ok", _execute(functions, name, invocation_id, datum, metadata), os.getpid()))
    except BaseException as exc:  # the function's failure is the invocation's outcome
        data = _failure(exc)
    _send_result(send, call_id, data)


async def _invoke_async_and_reply(send, fn, call_id: int, invocation_id: str, datum: Datum,
                                  metadata: Mapping[str, Datum] | None) -> None:
    try:
        data = pickle.dumps(("ok", await _execute_async(fn, invocation_id, datum, metadata), os.getpid()))
    except BaseException as exc:  # the function's failure is the invocation's outcome
        data = _failure(exc)
    _send_result(send, call_id, data)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()
    leftovers = asyncio.all_tasks(loop)  # the app's own background tasks, if any
    for task in leftovers:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def worker_main(conn, app_spec: str, settings: Mapping[str, str], only: tuple[str, ...] | None,
                directory: str, threads: int, log_levels: Mapping[str, int]) -> None:
    """A language worker process: import and index the app, then run invocations until told to stop.

    Sync functions run in a pool of ``threads`` threads, async ones on the process's event loop
    (one thread, started before the worker says it is ready), as the Python worker's dispatcher
    runs them; an async function never takes a thread of the pool.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):  # the host decides when its workers stop
        signal.signal(signum, signal.SIG_IGN)
    send_lock = threading.Lock()

    def send(message: Any) -> None:
        with send_lock:
            conn.send(message)

    root = logging.getLogger()
    root.handlers[:] = [_ForwardingHandler(send)]
    for name, level in log_levels.items():
        (root if name == "" else logging.getLogger(name)).setLevel(level)
    try:
        from devtools.local_host.indexing import index_app, load_app

        os.environ.update(settings)  # app settings are the worker's environment, as on Azure
        app = load_app(app_spec)
        functions, _ = index_app(app, AppSettings(settings), only=only, directory=directory)
    except BaseException:
        send(("failed", traceback.format_exc()))
        return
    by_name = {fn.name: fn for fn in functions}
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=_run_loop, args=(loop,), name=LOOP_THREAD_NAME, daemon=True)
    loop_thread.start()
    executor = ThreadPoolExecutor(threads, thread_name_prefix="local-host-worker")
    in_flight: set[concurrent.futures.Future] = set()  # the async invocations
    send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the host died: its invocations cannot be answered any more
            os._exit(1)
        if message is None:
            break
        call_id, name, *request = message
        fn = by_name.get(name)
        if fn is not None and fn.is_async:
            future = asyncio.run_coroutine_threadsafe(_invoke_async_and_reply(send, fn, call_id, *request), loop)
            in_flight.add(future)
            future.add_done_callback(in_flight.discard)
        else:
            executor.submit(_invoke_and_reply, send, by_name, *message)
    # The host has waited for its invocations; these are the stragglers.
    executor.shutdown(wait=True)
    concurrent.futures.wait(list(in_flight))
    loop.call_soon_threadsafe(loop.stop)
    loop_thread.join(5)
    conn.close()


# -- in the host process --------------------------------------------------------------------------

class WorkerProcess:
    """One worker process and the host's two threads for its pipe (sending, receiving)."""

    def __init__(self, pool: "WorkerPool", index: int):
        self._pool, self.index = pool, index
        self.pending: dict[int, asyncio.Future] = {}  # touched on the host's loop only
        self.alive = True  # idem
        self.ready = threading.Event()
        self.start_error: str | None = None
        self.pid: int | None = None
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe(duplex=True)
        self.process = context.Process(
            target=worker_main, name=f"local-host-worker-process-{index}", daemon=False,
            args=(child, pool.app_spec, pool.settings, pool.only, pool.directory, pool.threads,
                  pool.log_levels))
        self.process.start()
        child.close()
        self.pid = self.process.pid
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_loop, name=f"{self.process.name}-send", daemon=True)
        self._reader = threading.Thread(target=self._read_loop, name=f"{self.process.name}-read", daemon=True)
        self._sender.start()
        self._reader.start()

    def submit(self, call_id: int, future: asyncio.Future, request: tuple) -> None:
        self.pending[call_id] = future
        self._outbox.put((call_id, *request))

    def _send_loop(self) -> None:
        while True:
            message = self._outbox.get()
            try:
                self._conn.send(message)  # pickles here, not on the host's loop
            except (OSError, ValueError):
                return  # the reader sees the end of the pipe and fails what is pending
            if message is None:
                return

    def _read_loop(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "result":
                self._pool.call_on_loop(self._resolve, message[1], message[2])
            elif kind == "log":
                record = message[1]
                logging.getLogger(record.name).handle(record)
            elif kind == "ready":
                self.ready.set()
            elif kind == "failed":
                self.start_error = message[1]
                self.ready.set()
        self.process.join(5)
        self.ready.set()
        self._pool.call_on_loop(self._pool.on_exit, self)

    def _resolve(self, call_id: int, data: bytes) -> None:
        future = self.pending.pop(call_id, None)
        if future is not None and not future.done():
            future.set_result(data)

    def fail_pending(self, error: BaseException) -> None:
        self.alive = False
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    def request_stop(self) -> None:
        self._outbox.put(None)

    def finish(self, timeout: float) -> None:
        """Wait for the process to exit (after ``request_stop``); kill it after ``timeout``."""
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._reader.join(5)
        self._conn.close()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()


class WorkerPool:
    """N worker processes for the functions of one host (see the module docstring)."""

    def __init__(self, count: int, *, app_spec: str, settings: Mapping[str, str],
                 only: tuple[str, ...] | None, directory: str, threads: int):
        self.count, self.app_spec, self.settings = count, app_spec, dict(settings)
        self.only, self.directory, self.threads = only, directory, threads
        root = logging.getLogger()
        self.log_levels = {"": root.getEffectiveLevel(), **{
            name: lg.level for name, lg in root.manager.loggerDict.items()
            if isinstance(lg, logging.Logger) and lg.level != logging.NOTSET}}
        self.workers: list[WorkerProcess] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self._turn = itertools.count()
        self._stopping = False

    # -- lifecycle (blocking: call them off the host's loop) -------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, timeout: float = START_TIMEOUT) -> "WorkerPool":
        """Start the processes; return once each has imported and indexed the app.

        :raises RuntimeError: with the worker's traceback when the app cannot be loaded there.
        """
        self._loop = loop
        atexit.register(self.kill)  # runs before multiprocessing's own hook, which would wait for them
        self.workers = [WorkerProcess(self, i) for i in range(self.count)]
        for worker in self.workers:
            if not worker.ready.wait(timeout) or worker.start_error or not worker.process.is_alive():
                self.stop(clean=False)
                raise RuntimeError(f"worker process {worker.pid} did not start:\n"
                                   f"{worker.start_error or 'no answer (exit code %s)' % worker.process.exitcode}")
        logger.info("%d worker processes (PIDs %s), %d threads each", self.count,
                    ", ".join(str(w.pid) for w in self.workers), self.threads)
        return self

    def stop(self, *, clean: bool, timeout: float = 10.0) -> None:
        """Stop every worker: after their in-flight invocations when ``clean``, else kill them."""
        self._stopping = True
        workers = list(self.workers)
        for worker in workers:
            worker.request_stop() if clean else worker.kill()
        for worker in workers:
            worker.finish(timeout if clean else 1.0)
        atexit.unregister(self.kill)

    def kill(self) -> None:
        self._stopping = True
        for worker in self.workers:
            worker.kill()

    # -- on the host's loop ----------------------------------------------------------------------

    def call_on_loop(self, callback, *args) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the host's loop is closed: nobody waits any more
            pass

    def on_exit(self, worker: WorkerProcess) -> None:
        code = worker.process.exitcode
        worker.fail_pending(WorkerProcessError(f"the worker process {worker.pid} exited (code {code}) "
                                               "before the invocation finished"))
        if self._stopping or worker not in self.workers:
            return
        logger.error("Worker process %s exited unexpectedly (code %s): starting another one", worker.pid, code)
        replacement = WorkerProcess(self, worker.index)
        self.workers[self.workers.index(worker)] = replacement

    def _pick(self) -> WorkerProcess:
        live = [w for w in self.workers if w.alive]
        if not live:
            raise WorkerProcessError("no worker process is running")
        turn = next(self._turn)
        return min(live, key=lambda w: (len(w.pending), (w.index - turn) % len(self.workers)))

    async def invoke(self, name: str, invocation_id: str, datum: Datum,
                     metadata: Mapping[str, Datum] | None) -> tuple[list[tuple[str, Datum]], int]:
        """Run a function (sync or async) in a worker process.

        :return: its encoded outputs by binding name, and the worker's PID.
        :raises: the function's exception (its remote traceback as ``__cause__``).
        """
        worker = self._pick()
        future = asyncio.get_running_loop().create_future()
        call_id = next(self._ids)
        worker.submit(call_id, future, (name, invocation_id, datum, metadata))
        try:
            data = await future
        finally:
            worker.pending.pop(call_id, None)
        reply = pickle.loads(data)
        if reply[0] == "ok":
            return reply[1], reply[2]
        _, error, remote, pid = reply
        try:
            error.worker_pid = pid
        except AttributeError:
            pass
        raise error from RemoteTraceback(f"\n(in worker process {pid})\n{remote}")
