"""Batch checks (HTTP + queue worker + poison), scheduled revalidation and the outcome outbox relay."""
import logging

import azure.functions as func

from functions._http import http_endpoint, json_body, json_response, tenant_id
from shared import bootstrap, names

bp = func.Blueprint()
log = logging.getLogger(__name__)
JOBS = "tenants/{tenantId}/validation-jobs"


@bp.route(route=JOBS, methods=["POST"])
@http_endpoint
def create_validation_job(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant = tenant_id(req)
    services = bootstrap.deps().job_services
    job = services.create_job(tenant, json_body(req), correlation_id=cid)
    location = f"/api/tenants/{tenant}/validation-jobs/{job.id}"
    return json_response(services.get_job(tenant, job.id), cid, status=202, headers={"Location": location})


@bp.route(route=JOBS + "/{jobId}", methods=["GET"])
@http_endpoint
def get_validation_job(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    job = bootstrap.deps().job_services.get_job(tenant_id(req), req.route_params.get("jobId", "").lower())
    return json_response(job, cid)


@bp.queue_trigger(arg_name="msg", queue_name=names.VALIDATION_REQUESTS_QUEUE, connection=names.STORAGE_CONNECTION)
def validation_worker(msg: func.QueueMessage) -> None:
    result = bootstrap.deps().job_services.process(msg.get_body().decode("utf-8"))
    log.info("work message %s: %s", msg.id, result)


@bp.queue_trigger(arg_name="msg", queue_name=names.VALIDATION_REQUESTS_QUEUE + "-poison",
                  connection=names.STORAGE_CONNECTION)
def validation_poison(msg: func.QueueMessage) -> None:
    result = bootstrap.deps().job_services.process_poison(msg.get_body().decode("utf-8"))
    log.warning("poison work message %s: %s", msg.id, result)


@bp.timer_trigger(arg_name="timer", schedule="%REVALIDATION_SCHEDULE%", run_on_startup=False)
def scheduled_revalidation(timer: func.TimerRequest) -> None:
    deps = bootstrap.deps()
    import uuid

    jobs = deps.job_services.schedule_revalidation(
        max_age_hours=deps.settings.revalidation_max_age_hours,
        spread_seconds=deps.settings.revalidation_spread_minutes * 60, correlation_id=str(uuid.uuid4()))
    log.info("scheduled revalidation: %d jobs, %d profiles", len(jobs), sum(j.total for j in jobs))


@bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False)
def outcome_outbox_relay(timer: func.TimerRequest) -> None:
    sent = bootstrap.deps().validation_runs.relay_outbox()
    if sent:
        log.info("outbox relay published %d outcomes", sent)
