"""A FunctionApp built with the real azure.functions decorators and blueprints, for host tests.

Queue names and the tick schedule are ``%SETTING%`` expressions so every test picks its own.
Functions record what they received in ``EVENTS`` so tests can check the objects the host built.
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import threading
import time
import typing

import azure.functions as func


class Recorder:
    """Thread-safe list of what the functions saw."""

    def __init__(self) -> None:
        self._events: list[dict] = []
        self._lock = threading.Lock()

    def add(self, kind: str, **data) -> None:
        with self._lock:
            self._events.append({"kind": kind, "at": time.monotonic(), **data})

    def of(self, kind: str, **match) -> list[dict]:
        with self._lock:
            return [e for e in self._events
                    if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]

    def wait(self, kind: str, count: int = 1, *, timeout: float = 10.0, **match) -> list[dict]:
        """The matching events, once there are at least ``count`` (``tests.waiting.wait_until``)."""
        from tests.waiting import wait_until

        def enough() -> list[dict]:
            seen = self.of(kind, **match)
            assert len(seen) >= count, f"saw {len(seen)} of {count} {kind} {match}: {self._events[-20:]}"
            return seen

        return wait_until(enough, timeout=timeout, interval=0.01)


EVENTS = Recorder()

http_bp = func.Blueprint()
queue_bp = func.Blueprint()
timer_bp = func.Blueprint()


def _json(data: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(data), status_code=status, mimetype="application/json")


@http_bp.route(route="items/{id:int}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def item_by_number(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"function": "item_by_number", "route": dict(req.route_params)})


@http_bp.route(route="items/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def item_by_name(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"function": "item_by_name", "route": dict(req.route_params)})


@http_bp.route(route="items/{id:int}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
def delete_item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(status_code=204)


@http_bp.route(route="things/{id:guid}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def thing(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": dict(req.route_params)})


@http_bp.route(route="users/{name:alpha}/{tab?}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def user_tab(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": dict(req.route_params)})


@http_bp.route(route="files/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def files(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": dict(req.route_params)})


@http_bp.route(route="echo/{tag}", methods=["POST", "PUT"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest) -> func.HttpResponse:
    payload = {"method": req.method, "url": req.url, "params": dict(req.params),
               "route": dict(req.route_params), "header": req.headers.get("x-test"),
               "body": req.get_body().decode("utf-8"), "json": req.get_json()}
    return func.HttpResponse(json.dumps(payload), status_code=201, headers={"X-Echo": "yes"},
                             mimetype="application/vnd.echo+json", charset="utf-8")


@http_bp.route(route="text", auth_level=func.AuthLevel.ANONYMOUS)
def text(req: func.HttpRequest) -> str:
    return "plain text"


@http_bp.route(route="html", auth_level=func.AuthLevel.ANONYMOUS)
def html(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("<p>é</p>", mimetype="text/html", charset="latin-1",
                             headers={"Set-Cookie": "session=abc; Path=/"})


@http_bp.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("kaboom")


@http_bp.route(route="bytes", auth_level=func.AuthLevel.ANONYMOUS)
def returns_bytes(req: func.HttpRequest):
    return b"raw"  # the worker cannot encode bytes for an HTTP output: Azure answers 500


@http_bp.route(route="secure/function", auth_level=func.AuthLevel.FUNCTION)
def secure_function(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("function ok")


@http_bp.route(route="secure/admin", auth_level=func.AuthLevel.ADMIN)
def secure_admin(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin ok")


@http_bp.route(route="secure/default")
def secure_default(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("default ok")  # the app's http_auth_level (FUNCTION) applies


@http_bp.route(route="context", auth_level=func.AuthLevel.ANONYMOUS)
def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _json({"invocation_id": context.invocation_id, "function_name": context.function_name,
                  "thread_invocation_id": context.thread_local_storage.invocation_id,
                  "trace_parent": context.trace_context.trace_parent})


@http_bp.route(route="async-context", auth_level=func.AuthLevel.ANONYMOUS)
async def async_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """An async function: where it runs (thread name) and what its context says."""
    return _json({"invocation_id": context.invocation_id,
                  "thread_invocation_id": context.thread_local_storage.invocation_id,
                  "thread": threading.current_thread().name})


@http_bp.route(route="slow/{seconds}", auth_level=func.AuthLevel.ANONYMOUS)
async def slow_async(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(float(req.route_params["seconds"]))
    return func.HttpResponse("slept")


@http_bp.route(route="sync-slow/{seconds}", auth_level=func.AuthLevel.ANONYMOUS)
def slow_sync(req: func.HttpRequest) -> func.HttpResponse:
    """Sleeps (simulated work); ``?tag=`` records a ``sync-slow`` event first (in-process hosts)."""
    if req.params.get("tag"):
        EVENTS.add("sync-slow", tag=req.params["tag"])
    time.sleep(float(req.route_params["seconds"]))
    return func.HttpResponse("slept")


@http_bp.route(route="setting/{name}", auth_level=func.AuthLevel.ANONYMOUS)
def setting(req: func.HttpRequest) -> func.HttpResponse:
    import os

    return func.HttpResponse(os.environ.get(req.route_params["name"], "<unset>"))


@http_bp.route(route="pid", auth_level=func.AuthLevel.ANONYMOUS)
def pid(req: func.HttpRequest) -> func.HttpResponse:
    """The process the function runs in (after ``?sleep=`` seconds), and a setting it sees."""
    time.sleep(float(req.params.get("sleep", "0")))
    return _json({"pid": os.getpid(), "setting": os.environ.get(req.params.get("setting", ""), "<unset>")})


@http_bp.route(route="async-pid", auth_level=func.AuthLevel.ANONYMOUS)
async def async_pid(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Where an async function runs (after awaiting ``?sleep=`` seconds): process, thread, loop."""
    await asyncio.sleep(float(req.params.get("sleep", "0")))
    return _json({"pid": os.getpid(), "thread": threading.current_thread().name,
                  "thread_id": threading.get_ident(), "loop": id(asyncio.get_running_loop()),
                  "invocation_id": context.invocation_id,
                  "thread_invocation_id": context.thread_local_storage.invocation_id})


@http_bp.route(route="async-boom", auth_level=func.AuthLevel.ANONYMOUS)
async def async_boom(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    raise ValueError(f"async kaboom in {os.getpid()}")


@http_bp.route(route="crash-worker", auth_level=func.AuthLevel.ANONYMOUS)
def crash_worker(req: func.HttpRequest) -> func.HttpResponse:
    """Ends the worker process it runs in (refuses to run anywhere else: it would end the tests)."""
    if multiprocessing.parent_process() is None:
        raise RuntimeError("not in a worker process")
    os._exit(3)


@http_bp.route(route="enqueue", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@http_bp.queue_output(arg_name="out", queue_name="%OUT_QUEUE%", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    out.set(req.get_body().decode("utf-8"))
    if req.params.get("fail"):
        raise RuntimeError("failed after setting the output")
    return func.HttpResponse(status_code=202)


@http_bp.route(route="enqueue-async", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@http_bp.queue_output(arg_name="out", queue_name="%OUT_QUEUE%", connection="AzureWebJobsStorage")
async def enqueue_async(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    """An async function with an output binding: the body, and the process that set it."""
    await asyncio.sleep(0)
    out.set(f"{req.get_body().decode('utf-8')}@{os.getpid()}")
    return func.HttpResponse(status_code=202)


@http_bp.route(route="enqueue-many", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@http_bp.queue_output(arg_name="out", queue_name="%OUT_QUEUE%", connection="AzureWebJobsStorage")
def enqueue_many(req: func.HttpRequest, out: func.Out[typing.List[str]]) -> func.HttpResponse:
    out.set(req.get_json())
    return func.HttpResponse(status_code=202)


@queue_bp.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
@queue_bp.queue_output(arg_name="out", queue_name="%OUT_QUEUE%", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage, out: func.Out[str]) -> None:
    """Body ``<verb>:<tag>[:<seconds>]``; verbs: ok, fail (always raises), sleep (then ok), pid (ok,
    the output is ``<body>@<the process's PID>``)."""
    body = msg.get_body().decode("utf-8")
    verb, tag, *rest = body.split(":")
    EVENTS.add("work", tag=tag, verb=verb, id=msg.id, body=body, dequeue_count=msg.dequeue_count,
               insertion_time=msg.insertion_time, expiration_time=msg.expiration_time,
               time_next_visible=msg.time_next_visible, pop_receipt=msg.pop_receipt)
    out.set(f"done:{body}")
    if verb in ("sleep", "pid") and rest:
        time.sleep(float(rest[0]))
    if verb == "pid":
        out.set(f"{body}@{os.getpid()}")
    if verb == "fail":
        raise RuntimeError(f"failing on purpose: {body}")
    EVENTS.add("work-done", tag=tag, body=body)


@queue_bp.queue_trigger(arg_name="text", queue_name="%TEXT_QUEUE%", connection="AzureWebJobsStorage")
async def text_message(text: str) -> None:
    EVENTS.add("text", body=text, type=type(text).__name__)


@timer_bp.timer_trigger(arg_name="timer", schedule="%TICK_SCHEDULE%")
def tick(timer: func.TimerRequest) -> None:
    EVENTS.add("tick", past_due=timer.past_due, status=timer.schedule_status)


@timer_bp.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
def on_startup(timer: func.TimerRequest) -> None:
    EVENTS.add("startup", past_due=timer.past_due)


app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (http_bp, queue_bp, timer_bp):
    app.register_functions(blueprint)
