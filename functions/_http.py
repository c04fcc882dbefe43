"""HTTP plumbing shared by the triggers: correlation ids, JSON bodies, RFC 9457 problems.

:data:`PROBLEMS` is the one table that maps domain errors to HTTP answers.
"""
from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import azure.functions as func

from shared.config import ConfigurationError
from shared.domain import errors
from shared.domain.pool import PoolExhausted

log = logging.getLogger("functions.http")

PROBLEM_BASE = "https://m365-profiles.dev/problems/"
_CID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.slug


#: Domain error → problem type. Found through the MRO, most specific first.
PROBLEMS: dict[type[BaseException], ProblemType] = {
    errors.InvalidInput: ProblemType("validation", 422, "The request has invalid fields"),
    errors.ProfileNotFound: ProblemType("not-found", 404, "Not found"),
    errors.NotFound: ProblemType("not-found", 404, "Not found"),
    errors.NameConflict: ProblemType("name-conflict", 409, "Profile name already in use"),
    errors.SecretMissing: ProblemType("secret-missing", 409, "The profile's password is missing from Key Vault"),
    errors.PreconditionRequired: ProblemType("precondition-required", 428, "If-Match header required"),
    errors.PreconditionFailed: ProblemType("precondition-failed", 412, "The profile was changed by someone else"),
    errors.DependencyUnavailable: ProblemType("dependency-unavailable", 503, "A dependency is unavailable"),
    errors.Unauthorized: ProblemType("unauthorized", 401, "Unauthorized"),
    PoolExhausted: ProblemType("pool-exhausted", 503, "No account-pool member is free"),
    ConfigurationError: ProblemType("configuration", 500, "The service is misconfigured"),
}
MALFORMED_JSON = ProblemType("malformed-json", 400, "The body is not valid JSON")
UNSUPPORTED_MEDIA = ProblemType("unsupported-media-type", 415, "Send application/json")
INVALID_PATH = ProblemType("invalid-path", 404, "Not found")
INTERNAL = ProblemType("internal", 500, "Internal error")
ALL_PROBLEM_TYPES = sorted({p.slug: p for p in [*PROBLEMS.values(), MALFORMED_JSON, UNSUPPORTED_MEDIA,
                                               INVALID_PATH, INTERNAL]}.values(), key=lambda p: p.slug)


class BadRequest(Exception):
    def __init__(self, problem: ProblemType, detail: str):
        super().__init__(detail)
        self.problem, self.detail = problem, detail


def correlation_id(req: func.HttpRequest) -> str:
    """The caller's ``x-correlation-id`` if it is sane, else a new one."""
    given = req.headers.get("x-correlation-id", "")
    return given if _CID.match(given) else str(uuid.uuid4())


def json_body(req: func.HttpRequest) -> Any:
    ctype = (req.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
    if ctype not in ("application/json", "application/merge-patch+json") and not ctype.endswith("+json"):
        raise BadRequest(UNSUPPORTED_MEDIA, f"Content-Type {ctype!r} is not supported; send application/json.")
    try:
        return json.loads(req.get_body() or b"null")
    except ValueError as exc:
        raise BadRequest(MALFORMED_JSON, f"The body is not valid JSON ({exc.msg} at position {exc.pos}).") from None


def tenant_id(req: func.HttpRequest) -> str:
    value = req.route_params.get("tenantId", "")
    if not _GUID.match(value):
        raise BadRequest(INVALID_PATH, "tenantId must be a GUID.")
    return value.lower()


def json_response(body: Any, cid: str, *, status: int = 200, headers: dict[str, str] | None = None,
                  etag: str | None = None) -> func.HttpResponse:
    out = {"x-correlation-id": cid, "Cache-Control": "no-store", **(headers or {})}
    if etag:
        out["ETag"] = etag
    return func.HttpResponse(json.dumps(body), status_code=status, headers=out, mimetype="application/json",
                             charset="utf-8")


def problem_response(problem: ProblemType, cid: str, *, detail: str, instance: str | None = None,
                     extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> func.HttpResponse:
    body = {"type": problem.uri, "title": problem.title, "status": problem.status, "detail": detail,
            "correlationId": cid, **({"instance": instance} if instance else {}), **(extra or {})}
    out = {"x-correlation-id": cid, "Cache-Control": "no-store", **(headers or {})}
    return func.HttpResponse(json.dumps(body), status_code=problem.status, headers=out,
                             mimetype="application/problem+json", charset="utf-8")


def _problem_for(exc: BaseException) -> ProblemType | None:
    for cls in type(exc).__mro__:
        if cls in PROBLEMS:
            return PROBLEMS[cls]
    return None


def error_response(exc: BaseException, cid: str, req: func.HttpRequest) -> func.HttpResponse:
    instance = _path(req)
    if isinstance(exc, BadRequest):
        return problem_response(exc.problem, cid, detail=exc.detail, instance=instance)
    problem = _problem_for(exc)
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
    from urllib.parse import urlsplit

    return urlsplit(req.url).path


def http_endpoint(handler: Callable[[func.HttpRequest, str], func.HttpResponse]):
    """Wrap a trigger: give it a correlation id, turn errors into problems, log the request."""

    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        cid = correlation_id(req)
        try:
            response = handler(req, cid)
        except Exception as exc:  # noqa: BLE001 - mapped to a problem, never a bare 500
            response = error_response(exc, cid, req)
        log.info("%s %s -> %s correlation_id=%s", req.method, _path(req), response.status_code, cid,
                 extra={"correlation_id": cid, "status": response.status_code})
        return response

    # Not functools.wraps: the Functions worker reads the signature, which must stay (req).
    wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = handler.__name__, handler.__qualname__, handler.__doc__
    return wrapper
