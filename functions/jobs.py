"""Batch checks (HTTP + queue worker + poison), scheduled revalidation and the outcome outbox relay.

The ``validation-requests`` worker waits seconds on upstreams per profile, so it is ``async def``
(run on the worker's event loop) and does its work on the bounded
:data:`shared.executors.QUEUE_VALIDATION` executor, never in the worker's thread pool, which the
quick triggers need (issue 12, point 4; see :mod:`shared.executors`).

Each message is handled in a CONSUMER span that continues the ``traceparent`` the message carries
(the job's HTTP request, or the fan-out that sent it); the scheduled run is the root span of the
jobs it creates (:mod:`shared.telemetry`).
"""
import asyncio
import functools
import logging
import uuid
from collections import Counter
from datetime import datetime, timezone

import azure.functions as func

from functions._http import body, json_response, operation, path_id, tenant_id
from shared import executors, names, telemetry
from shared.bootstrap import services
from shared.contract.jobs import JobRequest, job_out

bp = func.Blueprint()
log = logging.getLogger(__name__)


@operation(bp, "createValidationJob")
def create_validation_job(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant, selection = tenant_id(req), body(req, JobRequest).selection()
    summary = services().jobs.create_job(tenant, selection, correlation_id=cid)
    return json_response(job_out(summary, datetime.now(timezone.utc)), cid, status=202,
                         headers={"Location": f"/api/tenants/{tenant}/validation-jobs/{summary.job.id}"})


@operation(bp, "getValidationJob")
def get_validation_job(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    summary = services().jobs.get_job(tenant_id(req), path_id(req, "jobId"))
    return json_response(job_out(summary, datetime.now(timezone.utc)), cid)


@bp.queue_trigger(arg_name="msg", queue_name=names.VALIDATION_REQUESTS_QUEUE, connection=names.STORAGE_CONNECTION)
async def validation_worker(msg: func.QueueMessage) -> None:
    """One message: a work group's profiles are validated at the same time, each in its own
    consumer span. The message fails (the host retries it) if any of them raised, after all ran:
    on the retry the finished ones are duplicates that count nothing."""
    text = msg.get_body().decode("utf-8")
    members = services().jobs.members(text)
    results = await asyncio.gather(*(executors.run_blocking(
        executors.QUEUE_VALIDATION, telemetry.consume, names.VALIDATION_REQUESTS_QUEUE, member,
        functools.partial(_process, member, msg.dequeue_count), message_id=msg.id,
        dequeue_count=msg.dequeue_count) for member in members), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    counts = Counter(r.value for r in results if not isinstance(r, BaseException))
    log.info("work message %s: %s", msg.id, ", ".join(
        [f"{n} {value}" if len(members) > 1 else value for value, n in counts.items()]
        + ([f"{len(failures)} raised"] if failures else [])))
    if failures:
        raise failures[0]


def _process(text: str, dequeue_count: int | None):
    return services().jobs.process(text, dequeue_count=dequeue_count)


@bp.queue_trigger(arg_name="msg", queue_name=names.VALIDATION_REQUESTS_QUEUE + "-poison",
                  connection=names.STORAGE_CONNECTION)
def validation_poison(msg: func.QueueMessage) -> None:
    text = msg.get_body().decode("utf-8")
    result = telemetry.consume(names.VALIDATION_REQUESTS_QUEUE + "-poison", text,
                               lambda: services().jobs.process_poison(text), message_id=msg.id,
                               dequeue_count=msg.dequeue_count)
    log.warning("poison work message %s: %s", msg.id, result.value)


@bp.timer_trigger(arg_name="timer", schedule="%REVALIDATION_SCHEDULE%", run_on_startup=False)
def scheduled_revalidation(timer: func.TimerRequest) -> None:
    cid = str(uuid.uuid4())
    with telemetry.internal_span("scheduled revalidation", **{"m365.correlation_id": cid}) as span:
        jobs = services().jobs.schedule_revalidation(correlation_id=cid)
        span.set_attribute("m365.jobs", len(jobs))
    log.info("scheduled revalidation: %d jobs, %d profiles", len(jobs), sum(j.total for j in jobs))
