"""Batch checks on the wire: the job request (exactly one selection) and the job's progress."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import Field, model_validator

from shared.contract.base import Guid, absent, RequestModel, ResponseModel, literal_of
from shared.domain.errors import FieldError, InvalidInput
from shared.domain.jobs import MAX_PROFILE_IDS, JobState, JobSummary, Reason, Selection
from shared.domain.validation import LAST_STATUSES


class JobFilter(RequestModel):
    last_status: literal_of(LAST_STATUSES)  # type: ignore[valid-type]


class JobRequest(RequestModel):
    """Exactly one of ``profileIds``, ``all: true`` or ``filter``."""

    model_config = {"json_schema_extra": {"oneOf": [{"required": ["profileIds"]}, {"required": ["all"]},
                                                    {"required": ["filter"]}]}}

    profile_ids: list[Guid] = absent(min_length=1, max_length=MAX_PROFILE_IDS)
    all: Literal[True] = absent()
    filter: JobFilter = absent()

    @model_validator(mode="after")
    def _exactly_one(self) -> "JobRequest":
        if len(self.model_fields_set) != 1:
            raise InvalidInput([FieldError("", "selection", "Send exactly one of profileIds, all: true, or filter.")])
        return self

    @classmethod
    def rule_errors(cls, raw: Any) -> list[FieldError]:
        if isinstance(raw, dict) and len({"profileIds", "all", "filter"} & set(raw)) != 1:
            return [FieldError("", "selection", "Send exactly one of profileIds, all: true, or filter.")]
        return []

    def selection(self) -> Selection:
        if self.profile_ids is not None:
            return Selection(profile_ids=tuple(dict.fromkeys(i.lower() for i in self.profile_ids)))
        if self.all:
            return Selection(all=True)
        return Selection(last_status=self.filter.last_status)


class FailureGroup(ResponseModel):
    message_id: str
    count: int
    profile_ids: list[str]


class Job(ResponseModel):
    id: Guid
    tenant_id: Guid
    reason: literal_of(Reason)  # type: ignore[valid-type]
    selection: dict[str, Any]
    state: literal_of(JobState)  # type: ignore[valid-type]
    total: int
    done: int
    passed: int
    failed: int
    errors: int
    throttled: int
    by_message_id: dict[str, int]
    failures: list[FailureGroup]
    percent: float
    eta: Optional[datetime]
    created_at: datetime
    started_at: Optional[datetime]
    finished_at: Optional[datetime]


def job_out(summary: JobSummary, now: datetime) -> Job:
    """The one mapping from a job's summary to its wire shape."""
    job, counts = summary.job, sorted(summary.by_message_id.items())
    final = summary.state in (JobState.COMPLETED, JobState.COMPLETED_WITH_ERRORS)
    return Job(
        id=job.id, tenant_id=job.tenant_id, reason=job.reason.value, selection=job.selection,
        state=summary.state.value, total=summary.total, done=summary.done, passed=summary.passed,
        failed=summary.failed, errors=summary.errors, throttled=summary.throttled,
        by_message_id=dict(counts),
        failures=[FailureGroup(message_id=k, count=n, profile_ids=sorted(summary.failures.get(k, ()))) for k, n in counts],
        percent=summary.percent(), eta=summary.eta(now), created_at=job.created_at, started_at=summary.started_at,
        finished_at=summary.finished_at if final else None)
