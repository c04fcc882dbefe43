"""HTTP front end (aiohttp): HTTP triggers under the route prefix, and the host's admin API.

Order of checks, as on Azure: route and method (404: the host's routes carry their methods as a
route constraint, so a known path with a method no function takes is not found either, not 405) →
key (401) → invocation (500 on an unhandled exception). Keys come from ``x-functions-key`` or
``?code=``; the local key (``LOCAL_FUNCTION_KEY``) is both the function key and the master key.

The host's own answers (:func:`host_answer`: 401, 404, 413, 500, 503) have an empty body, no
``Content-Type`` and none of the app's headers (no ``x-correlation-id``): the real host keeps its
request id (``X-ARR-LOG-ID`` or a new GUID) for its logs only. host.json
``extensions.http.customHeaders`` are added to every answer, the host's and the app's, without
replacing a header the function set (README: sources).

Admin API (master key unless noted): ``POST /admin/functions/{name}`` with ``{"input": "..."}``
runs a non-HTTP function now and answers 202; ``GET /admin/functions`` lists the functions;
``GET /admin/host/status``; ``GET /admin/host/ping`` (anonymous) answers 200 once the host runs.
"""
from __future__ import annotations

import hmac
import json
import logging
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web
from azure.functions.meta import Datum
from multidict import CIMultiDict

from devtools.local_host.indexing import HTTP_TRIGGER, IndexedFunction
from devtools.local_host.invocation import Invoker
from devtools.local_host.routing import RouteTable, RouteTemplate, split_path
from devtools.local_host.settings import AppSettings

logger = logging.getLogger(__name__)

KEY_HEADER = "x-functions-key"
_NOT_FORWARDED = {"content-length", "transfer-encoding", "connection"}
#: The host's request size limit (``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT``'s default, 100 MB).
MAX_REQUEST_BYTES = 100 * 1024 * 1024

Fire = Callable[[IndexedFunction, Any], Awaitable[None]]


def host_answer(status: int, headers: Mapping[str, str] | None = None) -> web.Response:
    """An answer of the host itself: the status, an empty body (``Content-Length: 0``, no
    ``Content-Type``)."""
    return web.Response(status=status, headers=headers)


def route_of(fn: IndexedFunction) -> str:
    return fn.trigger.get("route") or fn.name


def methods_of(fn: IndexedFunction) -> frozenset[str] | None:
    methods = fn.trigger.get("methods")
    return frozenset(str(m).upper() for m in methods) if methods else None


def build_route_table(functions: list[IndexedFunction]) -> RouteTable:
    """:raises routing.RouteTemplateError: for a template ASP.NET would refuse."""
    return RouteTable((RouteTemplate.parse(route_of(fn)), methods_of(fn), fn)
                      for fn in functions if fn.trigger_type == HTTP_TRIGGER)


def request_datum(request: web.Request, body: bytes, route_values: dict[str, str]) -> Datum:
    """The host's RpcHttp for ``func.HttpRequest`` (repeated headers/params joined with ',')."""
    def joined(pairs, *, fold_case: bool) -> dict[str, Datum]:
        merged: dict[str, list[str]] = {}
        for name, value in pairs:
            merged.setdefault(name.lower() if fold_case else name, []).append(value)
        return {k: Datum(",".join(v), "string") for k, v in merged.items()}

    return Datum({
        "method": Datum(request.method, "string"),
        "url": Datum(str(request.url), "string"),
        "headers": joined(request.headers.items(), fold_case=True),
        "query": joined(request.query.items(), fold_case=False),
        "params": {k: Datum(v, "string") for k, v in route_values.items()},
        "body": Datum(body, "bytes"),
    }, "http")


def response_from(datum: Datum | None) -> web.Response:
    """Turn the worker's encoded HTTP output into the response."""
    if datum is None:
        return web.Response(status=204)
    if datum.type == "string":
        return web.Response(status=200, body=datum.value.encode("utf-8"),
                            headers={"Content-Type": "text/plain; charset=utf-8"})
    value = datum.value
    headers = CIMultiDict((name, h.value) for name, h in value["headers"].items()
                          if name.lower() not in _NOT_FORWARDED)
    for cookie in value.get("cookies") or []:  # SimpleCookie objects made by the converter
        for morsel in cookie.values():
            headers.add("Set-Cookie", morsel.OutputString())
    body = value["body"].value if value.get("body") is not None else b""
    return web.Response(status=int(value["status_code"].value), headers=headers,
                        body=body if isinstance(body, bytes) else str(body).encode("utf-8"))


class HttpFrontEnd:
    def __init__(self, functions: list[IndexedFunction], *, route_prefix: str, settings: AppSettings,
                 invoker: Invoker, fire: Fire, is_serving: Callable[[], bool],
                 custom_headers: Mapping[str, str] | None = None):
        self._functions = {fn.name.lower(): fn for fn in functions}
        self._routes = build_route_table(functions)
        self._prefix = split_path(route_prefix)
        self._settings, self._invoker, self._fire = settings, invoker, fire
        self._is_serving = is_serving
        self._custom_headers = dict(custom_headers or {})

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def _has_key(self, request: web.Request) -> bool:
        presented = request.headers.get(KEY_HEADER) or request.query.get("code") or ""
        return any(hmac.compare_digest(presented.encode(), key.encode()) for key in self._settings.keys)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = await self._answer(request)
        for name, value in self._custom_headers.items():  # the host's TryAdd: the function's win
            if name not in response.headers:
                response.headers[name] = value
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if not self._is_serving():  # still starting, or draining for shutdown
            return host_answer(503)
        segments = split_path(request.rel_url.raw_path)
        if segments and segments[0].lower() == "admin":
            return await self._admin(request, segments[1:])
        n = len(self._prefix)
        if [s.lower() for s in segments[:n]] != [s.lower() for s in self._prefix]:
            return host_answer(404)
        match, _ = self._routes.find("/".join(segments[n:]), request.method)
        if match is None:  # no route, or none for this method: the host answers 404 either way
            return host_answer(404)
        fn: IndexedFunction = match.target
        if str(fn.trigger.get("authLevel", "FUNCTION")).upper() != "ANONYMOUS" and not self._has_key(request):
            return host_answer(401)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:  # over the host's request limit (100 MB)
            return host_answer(413)
        record = await self._invoker.invoke(fn, request_datum(request, body, match.values),
                                            reason="This function was programmatically called via the host APIs.")
        if not record.succeeded:
            return host_answer(500)
        return response_from(record.http_response)

    async def _admin(self, request: web.Request, rest: list[str]) -> web.StreamResponse:
        path = "/".join(rest).lower()
        if path == "host/ping":
            return host_answer(200)
        if not self._has_key(request):
            return host_answer(401)
        if path == "host/status" and request.method == "GET":
            return web.json_response({"id": "local", "state": "Running", "processUptime": None})
        if path == "functions" and request.method == "GET":
            return web.json_response([self._describe(fn) for fn in self._functions.values()])
        if len(rest) == 2 and rest[0].lower() == "functions" and request.method == "POST":
            return await self._invoke_now(request, rest[1])
        return host_answer(404)

    async def _invoke_now(self, request: web.Request, name: str) -> web.StreamResponse:
        fn = self._functions.get(name.lower())
        if fn is None:
            return host_answer(404)
        if fn.trigger_type == HTTP_TRIGGER:
            return web.json_response({"error": "HTTP-triggered functions are called on their route"},
                                     status=400)
        try:
            raw = await request.read()
            payload = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return web.json_response({"error": "the body must be JSON: {\"input\": \"...\"}"}, status=400)
        await self._fire(fn, payload.get("input") if isinstance(payload, dict) else None)
        return web.Response(status=202)

    def _describe(self, fn: IndexedFunction) -> dict[str, Any]:
        return {"name": fn.name, "language": "python", "isDisabled": False,
                "config": {"bindings": list(fn.bindings)},
                "invoke_url_template": route_of(fn) if fn.trigger_type == HTTP_TRIGGER else None}
