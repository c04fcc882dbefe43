"""HTTP plumbing shared by the triggers: registration from the route table, correlation ids,
bodies parsed by the contract's models, RFC 9457 problems (table in :mod:`shared.contract.problems`),
and one SERVER span per request that continues the caller's W3C ``traceparent`` (:mod:`shared.telemetry`)."""
from __future__ import annotations

import json
import logging
import re
import uuid
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import urlsplit

import azure.functions as func
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from shared.contract.base import BodyTooLarge, MalformedJson, RequestModel, check_limits, field_errors, parse_body
from shared.contract.problems import (INTERNAL, INVALID_PATH, MALFORMED_JSON, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA,
                                      ProblemType, problem_for)
from shared.contract.routes import BY_ID
from shared import telemetry
from shared.domain import errors

log = logging.getLogger("functions.http")

_CID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
M = TypeVar("M", bound=RequestModel)


class BadRequest(Exception):
    def __init__(self, problem: ProblemType, detail: str):
        super().__init__(detail)
        self.problem, self.detail = problem, detail


def correlation_id(req: func.HttpRequest) -> str:
    """The caller's ``x-correlation-id`` if it is sane, else a new one."""
    given = req.headers.get("x-correlation-id", "")
    return given if _CID.fullmatch(given) else str(uuid.uuid4())


def body(req: func.HttpRequest, model: type[M] | Callable[[bytes], M], *, optional: bool = False) -> M | None:
    """The request body parsed by ``model`` (415 for another media type, 400 when it is not JSON,
    422 naming every field that breaks a rule). An optional body may be left out (None). ``model``
    may be a parser that picks the model (a body with variants, e.g. by ``kind``)."""
    raw = raw_body(req)
    if optional and not raw.strip():
        return None
    ctype = (req.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
    if ctype not in ("application/json", "application/merge-patch+json") and not ctype.endswith("+json"):
        raise BadRequest(UNSUPPORTED_MEDIA, f"Content-Type {ctype!r} is not supported; send application/json.")
    try:
        if isinstance(model, type):
            return parse_body(model, raw or b"null")
        return model(raw or b"null")
    except MalformedJson as exc:
        raise BadRequest(MALFORMED_JSON, f"The body is not valid JSON ({exc}).") from exc


def raw_body(req: func.HttpRequest) -> bytes:
    """The request body within the contract's limits (:func:`shared.contract.base.check_limits`):
    413 past the size limit, 400 past the depth or number limits."""
    raw = req.get_body() or b""
    try:
        check_limits(raw)
    except BodyTooLarge as exc:
        raise BadRequest(PAYLOAD_TOO_LARGE, str(exc)) from exc
    except MalformedJson as exc:
        raise BadRequest(MALFORMED_JSON, f"The body is not accepted JSON ({exc}).") from exc
    return raw


def query(req: func.HttpRequest, model: type[M]) -> M:
    """The query string parsed by ``model`` (422 naming each bad parameter)."""
    try:
        return model.model_validate(dict(req.params))
    except ValidationError as exc:
        raise errors.InvalidInput(field_errors(exc), "The query has invalid parameters.") from exc


def tenant_id(req: func.HttpRequest) -> str:
    return path_id(req, "tenantId")


def path_id(req: func.HttpRequest, name: str) -> str:
    """A GUID from the route (lowercase); 404 when it is not one."""
    value = req.route_params.get(name, "")
    if not _GUID.fullmatch(value):
        raise BadRequest(INVALID_PATH, f"{name} must be a GUID.")
    return value.lower()


def json_response(payload: BaseModel | Any, cid: str, *, status: int = 200, headers: dict[str, str] | None = None,
                  etag: str | None = None) -> func.HttpResponse:
    """A JSON answer; a contract model is dumped by its aliases (camelCase)."""
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json", by_alias=True)
    out = {"x-correlation-id": cid, "Cache-Control": "no-store", **(headers or {})}
    if etag:
        out["ETag"] = etag
    return func.HttpResponse(json.dumps(payload), status_code=status, headers=out, mimetype="application/json",
                             charset="utf-8")


def problem_response(problem: ProblemType, cid: str, *, detail: str, instance: str | None = None,
                     extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> func.HttpResponse:
    payload = {"type": problem.uri, "title": problem.title, "status": problem.status, "detail": detail,
               "correlationId": cid, **({"instance": instance} if instance else {}), **(extra or {})}
    out = {"x-correlation-id": cid, "Cache-Control": "no-store", **(headers or {})}
    return func.HttpResponse(json.dumps(payload), status_code=problem.status, headers=out,
                             mimetype="application/problem+json", charset="utf-8")


def error_response(exc: BaseException, cid: str, req: func.HttpRequest) -> func.HttpResponse:
    instance = _path(req)
    if isinstance(exc, BadRequest):
        return problem_response(exc.problem, cid, detail=exc.detail, instance=instance)
    problem = problem_for(exc)
    if problem is None:
        log.exception("unhandled error", extra={"correlation_id": cid})
        return problem_response(INTERNAL, cid, detail="An unexpected error occurred; quote the correlation id.",
                                instance=instance)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, errors.InvalidInput):
        extra["errors"] = [e.to_dict() for e in exc.errors]
    if isinstance(exc, errors.NameConflict):
        extra["errors"] = [{"field": "name", "code": "unique", "detail": str(exc)}]
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        headers["Retry-After"] = str(retry_after)
        extra["retryAfterSeconds"] = retry_after
    if problem.status >= 500:
        log.warning("request failed: %s", problem.slug, extra={"correlation_id": cid})
    return problem_response(problem, cid, detail=str(exc) or problem.title, instance=instance, extra=extra,
                            headers=headers)


def _path(req: func.HttpRequest) -> str:
    return urlsplit(req.url).path


#: Longest request path put on a span (an id that is not one may be several KB).
_MAX_SPAN_PATH = 256


@contextmanager
def request_span(req: func.HttpRequest, operation_id: str | None) -> Iterator[trace.Span]:
    """The request's SERVER span (continuing its ``traceparent`` header), named ``METHOD /api/route``.
    Attributes: method, route, path (never the query: the function key may be ``?code=``), operation id."""
    op = BY_ID.get(operation_id) if operation_id else None
    route = f"/api/{op.route}" if op else None
    attributes = {"http.request.method": req.method, "url.path": _path(req)[:_MAX_SPAN_PATH],
                  **({"http.route": route, "m365.operation_id": operation_id} if op else {})}
    with telemetry.server_span(f"{req.method} {route or 'HTTP'}", headers=req.headers, attributes=attributes) as span:
        yield span


def http_endpoint(handler: Callable[[func.HttpRequest, str], func.HttpResponse], *, traced: bool = True):
    """Wrap a trigger: give it a correlation id and its SERVER span (``traced``; else the caller
    opened the span), turn errors into problems, log the request."""

    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        cid = correlation_id(req)
        op_id = getattr(handler, "operation_id", None)
        with request_span(req, op_id) if traced else nullcontext(trace.get_current_span()) as span:
            span.set_attribute("m365.correlation_id", cid)
            try:
                response = handler(req, cid)
            except Exception as exc:  # noqa: BLE001 - mapped to a problem, never a bare 500
                response = error_response(exc, cid, req)
            telemetry.set_http_status(span, response.status_code)
            log.info("%s %s -> %s correlation_id=%s", req.method, _path(req), response.status_code, cid,
                     extra={"correlation_id": cid, "status": response.status_code})
        return response

    # Not functools.wraps: the Functions worker reads the signature, which must stay (req).
    wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = handler.__name__, handler.__qualname__, handler.__doc__
    wrapper.operation_id = getattr(handler, "operation_id", None)
    return wrapper


def operation(bp: func.Blueprint, operation_id: str):
    """Register a trigger for the route table's operation (route, method, auth level)."""
    op = BY_ID[operation_id]
    level = func.AuthLevel.ANONYMOUS if op.anonymous else func.AuthLevel.FUNCTION

    def register(handler: Callable[[func.HttpRequest, str], func.HttpResponse]):
        handler.operation_id = operation_id  # type: ignore[attr-defined]
        return bp.route(route=op.route, methods=[op.method], auth_level=level)(http_endpoint(handler))

    return register
