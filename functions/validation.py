"""The Validation Test over HTTP: unsaved form values, a saved profile, and a profile's history."""
import azure.functions as func

from functions._http import http_endpoint, json_body, json_response, tenant_id
from shared import bootstrap

bp = func.Blueprint()


@bp.route(route="tenants/{tenantId}/validation-tests", methods=["POST"])
@http_endpoint
def validation_test(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    outcome = bootstrap.deps().validation_runs.test_form(tenant_id(req), json_body(req), correlation_id=cid)
    return json_response(outcome.to_dict(), cid)


@bp.route(route="tenants/{tenantId}/profiles/{profileId}/validate", methods=["POST"])
@http_endpoint
def validate_profile(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    deps = bootstrap.deps()
    profile = deps.profile_services.get_profile(tenant_id(req), req.route_params.get("profileId", "").lower())
    outcome, record = deps.validation_runs.validate_profile(profile, correlation_id=cid)
    return json_response({**outcome.to_dict(), "recordId": record.record_id}, cid)


@bp.route(route="tenants/{tenantId}/profiles/{profileId}/validations", methods=["GET"])
@http_endpoint
def list_validations(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    deps = bootstrap.deps()
    tenant, profile_id = tenant_id(req), req.route_params.get("profileId", "").lower()
    deps.profile_services.get_profile(tenant, profile_id)  # 404 for another tenant's profile
    records = deps.validation_runs.history.list(tenant, profile_id, limit=50)
    return json_response({"items": [{"recordId": r.record_id, "at": r.at.isoformat(), "reason": r.reason,
                                     "jobId": r.job_id, "correlationId": r.correlation_id,
                                     **r.outcome} for r in records]}, cid)
