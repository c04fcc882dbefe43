"""The Validation Test over HTTP: unsaved form values, a saved profile, and a profile's history."""
import azure.functions as func

from functions._http import body, json_response, operation, path_id, tenant_id
from shared.bootstrap import services
from shared.contract.profiles import ValidationTestRequest
from shared.contract.validation import ValidationHistory, ValidationRecord, ValidationResult, outcome_out

bp = func.Blueprint()


@operation(bp, "validationTest")
def validation_test(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    form = body(req, ValidationTestRequest).to_form(tenant_id(req))
    return json_response(outcome_out(services().validation.test_form(form, correlation_id=cid)), cid)


@operation(bp, "validateProfile")
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
