"""The Validation Test over HTTP: unsaved form values, a saved profile, and a profile's history.

``validationTest`` and ``validateProfile`` wait seconds on Entra, SharePoint, Graph and Key Vault,
so they are ``async def`` triggers (the worker runs them on its event loop, not in its thread pool)
whose whole handler runs on the bounded :data:`shared.executors.HTTP_VALIDATION` executor: a storm
of slow Validation Tests cannot take the threads that the quick triggers (``GET profile`` ...) run
on (issue 12, point 4; see :mod:`shared.executors`).
"""
from typing import Callable

import azure.functions as func

from functions._http import body, http_endpoint, json_response, operation, path_id, request_span, tenant_id
from shared import executors
from shared.bootstrap import services
from shared.contract.profiles import ValidationTestRequest
from shared.contract.routes import BY_ID
from shared.contract.validation import ValidationHistory, ValidationRecord, ValidationResult, outcome_out

bp = func.Blueprint()


def blocking_operation(blueprint: func.Blueprint, operation_id: str, work: executors.WorkClass):
    """Like :func:`functions._http.operation`, for a handler that blocks on upstreams: the trigger
    is ``async def`` and runs the wrapped handler (correlation id, problems, log line) on ``work``'s
    executor. The request's SERVER span opens here, before the executor is awaited, so its
    duration includes the wait for a thread (the context, with the span, goes to that thread)."""
    op = BY_ID[operation_id]
    level = func.AuthLevel.ANONYMOUS if op.anonymous else func.AuthLevel.FUNCTION

    def register(handler: Callable[[func.HttpRequest, str], func.HttpResponse]):
        handler.operation_id = operation_id  # type: ignore[attr-defined]
        endpoint = http_endpoint(handler, traced=False)

        async def trigger(req: func.HttpRequest) -> func.HttpResponse:
            with request_span(req, operation_id):
                return await executors.run_blocking(work, endpoint, req)

        # Not functools.wraps: the worker reads the signature, which must stay (req).
        trigger.__name__, trigger.__qualname__, trigger.__doc__ = (handler.__name__, handler.__qualname__,
                                                                   handler.__doc__)
        trigger.operation_id = operation_id  # type: ignore[attr-defined]
        return blueprint.route(route=op.route, methods=[op.method], auth_level=level)(trigger)

    return register


@blocking_operation(bp, "validationTest", executors.HTTP_VALIDATION)
def validation_test(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    form = body(req, ValidationTestRequest).to_form(tenant_id(req))
    return json_response(outcome_out(services().validation.test_form(form, correlation_id=cid)), cid)


@blocking_operation(bp, "validateProfile", executors.HTTP_VALIDATION)
def validate_profile(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    outcome, record = services().validation.validate_saved_profile(
        tenant_id(req), path_id(req, "profileId"), correlation_id=cid)
    return json_response(ValidationResult(**outcome_out(outcome).model_dump(), record_id=record.record_id), cid)


@operation(bp, "listValidations")
def list_validations(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    records = services().validation.list_validations(tenant_id(req), path_id(req, "profileId"), limit=50)
    return json_response(ValidationHistory(items=[
        ValidationRecord.model_validate({**r.outcome, "recordId": r.record_id, "at": r.at, "reason": r.reason,
                                         "jobId": r.job_id, "correlationId": r.correlation_id})
        for r in records]), cid)
