"""The OpenAPI 3.1 document, generated: schemas from the models, paths from the route table."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic.json_schema import models_json_schema

from shared.contract.misc import Problem
from shared.contract.problems import ALL_PROBLEM_TYPES
from shared.contract.routes import JSON, OPERATIONS, PATH_PARAM_SCHEMA, Operation

REF = "#/components/schemas/{model}"
PROBLEM_MEDIA = "application/problem+json"

#: What the Functions host answers by itself, before the app runs (the local host imitates it:
#: devtools/local_host/README.md cites the host's source). Such an answer has an empty body, no
#: Content-Type and no x-correlation-id: the host logs its own request id and sends none.
HOST_ANSWERS: tuple[dict[str, Any], ...] = (
    {"status": 401, "when": "the operation needs a function key and none, or a wrong one, came in "
                            "x-functions-key or ?code="},
    {"status": 404, "when": "no route matches the path, or the path is known but not with this method "
                            "(the host answers 404, not 405, and sends no Allow header; HEAD included)"},
    {"status": 413, "when": "the request body is over the host's limit (100 MB); the app's own limit "
                            "is far lower and answered as a problem"},
    {"status": 500, "when": "the function failed unexpectedly (the app maps every known failure itself)"},
    {"status": 503, "when": "the host is starting or shutting down"},
)
HOST_ANSWER_FORM = "empty body, no Content-Type, no x-correlation-id"
#: Why a status is what it is, where the generic words would mislead.
PROBLEM_DESCRIPTIONS = {
    429: "Problem (RFC 9457): no capacity for this caller right now (e.g. every pool member is leased "
         "or resting). A client condition, not a server fault: nothing failed and nothing is down, "
         "so it is not a 5xx that monitoring counts as an outage (409 would say the request conflicts "
         "with the resource's state, which retrying later does not change). Retry after Retry-After seconds.",
    503: "Problem (RFC 9457): a dependency this operation needs is unreachable; retry after Retry-After seconds.",
}


def _ref(model: type) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _schemas() -> dict[str, Any]:
    pairs: list[tuple[type, str]] = [(Problem, "serialization")]
    for op in OPERATIONS:
        for model in (op.body, op.query, *op.body_variants):
            if model is not None:
                pairs.append((model, "validation"))
        pairs += [(a.model, "serialization") for a in op.answers.values() if a.model is not None]
    unique = list(dict.fromkeys(pairs))
    _, top = models_json_schema(unique, ref_template=REF, by_alias=True)
    return top["$defs"]


def _query_parameters(op: Operation, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    if op.query is None:
        return []
    schema = schemas[op.query.__name__]
    required = set(schema.get("required", ()))
    return [{"name": name, "in": "query", "required": name in required, "schema": prop}
            for name, prop in schema["properties"].items()]


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    params = [{"name": p, "in": "path", "required": True, "schema": PATH_PARAM_SCHEMA} for p in op.path_params()]
    params += _query_parameters(op, schemas)
    params += [{"name": h.name, "in": "header", "required": h.required, "description": h.description,
                "schema": {"type": "string", "minLength": h.min_length}} for h in op.headers]
    params.append({"name": "x-correlation-id", "in": "header", "required": False,
                   "description": "Echoed in the answer's x-correlation-id (a new one when absent or odd)",
                   "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}})
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "parameters": params,
                           "responses": {}}
    if op.anonymous:
        out["security"] = []
    if op.body is not None:
        schema = ({"oneOf": [_ref(m) for m in (op.body, *op.body_variants)]} if op.body_variants
                  else _ref(op.body))
        out["requestBody"] = {"required": op.body_required,
                              "content": {media: {"schema": schema} for media in op.body_media}}
    for status, answer in sorted(op.answers.items()):
        response: dict[str, Any] = {"description": answer.description}
        content = {}
        if answer.model is not None:
            content[answer.media] = {"schema": _ref(answer.model)}
        elif status != 204:
            content[answer.media] = {"schema": {"type": "string"} if answer.media != JSON else {}}
        content.update({media: {"schema": {"type": "string"}} for media in answer.also})
        if content:
            response["content"] = content
        if answer.headers:
            response["headers"] = {h: {"schema": {"type": "string"}} for h in answer.headers}
        out["responses"][str(status)] = response
    problems = op.problems + ((413,) if op.body is not None and 413 not in op.problems else ())
    for status in problems:
        described = op.answers.get(status)
        problem = {"description": PROBLEM_DESCRIPTIONS.get(status, "Problem (RFC 9457)"),
                   "content": {PROBLEM_MEDIA: {"schema": _ref(Problem)}}}
        if status in (429, 503):
            problem["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        if status == 401 and not op.anonymous:
            # The Functions host itself refuses a missing or wrong key, before the app runs:
            # an empty body, as on Azure (and on the local host, which imitates it).
            problem = {"description": f"No or wrong function key, answered by the Functions host: {HOST_ANSWER_FORM}"}
        if described is None:
            out["responses"][str(status)] = problem
    return out


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The whole document (built once per process)."""
    schemas = _schemas()
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Microsoft 365 service-account profiles", "version": "1.0.0",
                 "description": "Profiles, Validation Test and troubleshooting, batch checks, account pool. "
                                "Every answer of the app carries x-correlation-id and errors are "
                                "application/problem+json; the Functions host's own answers "
                                f"(components.x-host-answers: {', '.join(str(a['status']) for a in HOST_ANSWERS)}) "
                                f"come before the app runs and have an {HOST_ANSWER_FORM}."},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": "/"}],
        "security": [{"functionKey": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}},
            "x-problem-types": [{"type": p.uri, "status": p.status, "title": p.title} for p in ALL_PROBLEM_TYPES],
            "x-host-answers": [dict(a, body="empty", headers="no Content-Type, no x-correlation-id")
                               for a in HOST_ANSWERS],
        },
    }
