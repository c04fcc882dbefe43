"""Batch checks: a job over many profiles, its work messages and its exact progress.

A job's counters are not kept as mutable numbers: each profile of a job has one item whose
final state is written once (idempotent), and the summary is computed from the items. So a message
delivered twice cannot count twice.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Iterable


MAX_PROFILE_IDS = 10_000
WORK_MESSAGE_VERSION = 1
#: Profile ids per fan-out message (about 13 KB of base64; a queue message holds 64 KB).
FANOUT_CHUNK = 250
#: Profiles per work message of a job (a :class:`WorkGroup`), validated at the same time by one
#: invocation. Each queue message costs a send, a receive, a delete and an invocation, and a group's
#: final states go in one transaction with the tally (whose fixed cost is most of it): one message
#: per 8 profiles instead of one per profile took a 500-profile job's Azurite CPU from about 20 to
#: 11 ms per validation and the host's from 28-37 to 27-30 ms; 16 instead of 8 took the host's from
#: 38.7 to 36.0 ms (1,500-profile jobs, four alternating pairs, each pair lower; README, "Tests and
#: benchmarks"). 250 ids per fan-out chunk make 16 groups (the last of 10).
WORK_GROUP = 16
#: Items in one atomic write with their tally (an entity-group transaction holds 100 operations).
ITEMS_PER_WRITE = 99


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completedWithErrors"


class ItemState(str, Enum):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"

    @property
    def final(self) -> bool:
        return self is not ItemState.PENDING


class Reason(str, Enum):
    BATCH = "batch"
    SCHEDULED = "scheduled"
    WEBHOOK = "webhook"


@dataclass(frozen=True)
class Selection:
    """Which profiles a job covers: a list of ids, all, or a filter on the last status."""

    profile_ids: tuple[str, ...] = ()
    all: bool = False
    last_status: str | None = None

    def summary(self) -> dict[str, Any]:
        """What the job was asked for, small enough for its row (ids are counted, not listed:
        10,000 of them would not fit a Table property)."""
        if self.profile_ids:
            return {"profileIds": len(self.profile_ids)}
        if self.all:
            return {"all": True}
        return {"filter": {"lastStatus": self.last_status}}


@dataclass(frozen=True)
class Job:
    id: str
    tenant_id: str
    reason: Reason
    selection: dict[str, Any]  # Selection.summary()
    total: int
    created_at: datetime
    correlation_id: str
    started_at: datetime | None = None


@dataclass(frozen=True)
class JobItem:
    job_id: str
    profile_id: str
    state: ItemState = ItemState.PENDING
    message_id: str | None = None
    throttled: int = 0
    detail: str = ""
    finished_at: datetime | None = None


def _trace(raw: dict) -> dict[str, str | None]:
    """The optional W3C trace context of an envelope (absent in messages sent before it existed)."""
    tp, ts = raw.get("traceparent"), raw.get("tracestate")
    return {"traceparent": tp if isinstance(tp, str) and tp else None,
            "tracestate": ts if isinstance(ts, str) and ts else None}


def _with_trace(body: dict, traceparent: str | None, tracestate: str | None) -> dict:
    return {**body, **({"traceparent": traceparent} if traceparent else {}),
            **({"tracestate": tracestate} if tracestate else {})}


@dataclass(frozen=True)
class WorkMessage:
    """The small versioned envelope on ``validation-requests`` (never a secret).

    ``traceparent``/``tracestate``: the W3C trace context of the span that sent it (optional; still
    version 1: a message without them starts no trace of its own, the worker's span is a new one).

    ``claim``: another copy of this message may exist (it was sent again by a worker that found
    the item busy, or by a fan-out chunk that was itself redelivered), so the worker claims the
    item before validating, whatever the dequeue count says (see ``JobServices.process``).
    """

    tenant_id: str
    profile_id: str
    job_id: str | None
    reason: Reason
    correlation_id: str
    throttled: int = 0
    traceparent: str | None = None
    tracestate: str | None = None
    claim: bool = False

    def to_json(self) -> str:
        return json.dumps(_with_trace(
            {"v": WORK_MESSAGE_VERSION, "tenantId": self.tenant_id, "profileId": self.profile_id,
             "jobId": self.job_id, "reason": self.reason.value, "correlationId": self.correlation_id,
             "throttled": self.throttled, **({"claim": True} if self.claim else {})},
            self.traceparent, self.tracestate))

    @classmethod
    def from_json(cls, text: str) -> "WorkMessage | WorkGroup | FanoutMessage":
        """Raises ``ValueError`` for anything that is not a version-1 envelope (it goes to poison)."""
        raw = json.loads(text)
        if not isinstance(raw, dict) or raw.get("v") != WORK_MESSAGE_VERSION:
            raise ValueError("not a version 1 work message")
        if raw.get("kind") == "fanout":
            return FanoutMessage(tenant_id=str(raw["tenantId"]), job_id=str(raw["jobId"]),
                                 profile_ids=tuple(str(p) for p in raw["profileIds"]), reason=Reason(raw["reason"]),
                                 correlation_id=str(raw.get("correlationId", "")), offset=int(raw.get("offset", 0)),
                                 spread_step=float(raw.get("spreadStep", 0)), **_trace(raw))
        if raw.get("kind") == "group":
            return WorkGroup(tenant_id=str(raw["tenantId"]), job_id=str(raw["jobId"]),
                             profile_ids=tuple(str(p) for p in raw["profileIds"]), reason=Reason(raw["reason"]),
                             correlation_id=str(raw.get("correlationId", "")), claim=raw.get("claim") is True,
                             **_trace(raw))
        return cls(tenant_id=str(raw["tenantId"]), profile_id=str(raw["profileId"]), job_id=raw.get("jobId"),
                   reason=Reason(raw.get("reason", "batch")), correlation_id=str(raw.get("correlationId", "")),
                   throttled=int(raw.get("throttled", 0)), claim=raw.get("claim") is True, **_trace(raw))


@dataclass(frozen=True)
class WorkGroup:
    """Up to :data:`WORK_GROUP` profiles of one job in one message; the worker validates them at
    the same time, each as its own :class:`WorkMessage` (:meth:`messages`), so every rule of one
    message (claims, duplicates, throttling, busy copies) holds for each profile of a group. A
    profile that has to go back (throttled, busy) goes back alone, as a plain work message.
    """

    tenant_id: str
    job_id: str
    profile_ids: tuple[str, ...]
    reason: Reason
    correlation_id: str
    traceparent: str | None = None
    tracestate: str | None = None
    claim: bool = False

    def to_json(self) -> str:
        return json.dumps(_with_trace(
            {"v": WORK_MESSAGE_VERSION, "kind": "group", "tenantId": self.tenant_id, "jobId": self.job_id,
             "profileIds": list(self.profile_ids), "reason": self.reason.value,
             "correlationId": self.correlation_id, **({"claim": True} if self.claim else {})},
            self.traceparent, self.tracestate))

    def messages(self) -> list[WorkMessage]:
        """One work message per profile, as if each had been sent alone."""
        return [WorkMessage(self.tenant_id, pid, self.job_id, self.reason, self.correlation_id,
                            traceparent=self.traceparent, tracestate=self.tracestate, claim=self.claim)
                for pid in self.profile_ids]


@dataclass(frozen=True)
class FanoutMessage:
    """A chunk of a job's profiles; the worker turns it into :class:`WorkGroup` messages of
    :data:`WORK_GROUP` profiles.

    Two levels keep job creation fast (a 10,000-profile job is 40 messages) and spread the
    sends over the workers.
    """

    tenant_id: str
    job_id: str
    profile_ids: tuple[str, ...]
    reason: Reason
    correlation_id: str
    offset: int = 0  #: position of the first id in the job (for spreading)
    spread_step: float = 0.0  #: seconds of visibility delay per position
    traceparent: str | None = None  #: W3C trace context of the span that created the job (optional)
    tracestate: str | None = None

    def to_json(self) -> str:
        return json.dumps(_with_trace(
            {"v": WORK_MESSAGE_VERSION, "kind": "fanout", "tenantId": self.tenant_id, "jobId": self.job_id,
             "profileIds": list(self.profile_ids), "reason": self.reason.value,
             "correlationId": self.correlation_id, "offset": self.offset, "spreadStep": self.spread_step},
            self.traceparent, self.tracestate))

    def expand(self, *, traceparent: str | None = None, tracestate: str | None = None,
               claim: bool = False) -> list[tuple["WorkGroup | WorkMessage", int]]:
        """The chunk's work groups with their visibility delays, or, when the chunk is spread over
        a window (scheduled runs), one work message per profile with its own delay (a spread is
        for the upstreams' sake: sign-ins evenly apart, not eight at once). They carry
        ``traceparent`` (the span that expands the chunk) or else this chunk's own. ``claim``:
        this chunk was delivered before (its messages may have been sent already), so each profile
        must claim its item."""
        tp, ts = (traceparent, tracestate) if traceparent else (self.traceparent, self.tracestate)
        if self.spread_step:
            return [(WorkMessage(self.tenant_id, pid, self.job_id, self.reason, self.correlation_id, traceparent=tp,
                                 tracestate=ts, claim=claim),
                     int((self.offset + i) * self.spread_step)) for i, pid in enumerate(self.profile_ids)]
        return [(WorkGroup(self.tenant_id, self.job_id, self.profile_ids[i:i + WORK_GROUP], self.reason,
                           self.correlation_id, traceparent=tp, tracestate=ts, claim=claim), 0)
                for i in range(0, len(self.profile_ids), WORK_GROUP)]


#: Profile ids kept per message id in one tally (the counts are always exact; the lists are a sample
#: big enough for a portal's screen and small enough for one Table entity).
FAILURE_SAMPLE = 100


@dataclass(frozen=True)
class JobTally:
    """One writer's exact count of a job's items (a shard: one per worker process and job).

    It is written in the same entity-group transaction as each item state it counts, by the one
    process that owns it, so it never double-counts a redelivered message and never needs a
    reconciliation; a job's progress is the sum of its tallies, read in O(1) whatever its size.
    """

    shard: str
    done: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    throttled: int = 0
    by_message_id: dict = field(default_factory=dict)  # message id -> count
    failures: dict = field(default_factory=dict)  # message id -> [profile id, ...] (a sample)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def counting(self, before: JobItem | None, after: JobItem, now: datetime) -> "JobTally":
        """This tally once ``after`` replaces ``before`` (None: the item is new)."""
        by_id, failures = dict(self.by_message_id), {k: list(v) for k, v in self.failures.items()}
        done, passed, failed, errors = self.done, self.passed, self.failed, self.errors
        if after.state.final and not (before and before.state.final):
            done += 1
            if after.state is ItemState.PASSED:
                passed += 1
            else:
                failed += after.state is ItemState.FAILED
                errors += after.state is ItemState.ERROR
                key = after.message_id or "ERROR"
                by_id[key] = by_id.get(key, 0) + 1
                sample = failures.setdefault(key, [])
                if len(sample) < FAILURE_SAMPLE:
                    sample.append(after.profile_id)
        finished = max((t for t in (self.finished_at, after.finished_at) if t), default=None)
        return JobTally(self.shard, done, passed, failed, errors,
                        self.throttled + max(0, after.throttled - (before.throttled if before else 0)),
                        by_id, failures, self.started_at or now, finished)


@dataclass
class JobSummary:
    job: Job
    total: int
    done: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    throttled: int = 0
    by_message_id: dict[str, int] = field(default_factory=dict)
    #: Profile ids per message id (every one when summarized from items; a sample from tallies).
    failures: dict[str, list[str]] = field(default_factory=dict)
    finished_at: datetime | None = None
    started_at: datetime | None = None

    @property
    def state(self) -> JobState:
        if self.total and self.done >= self.total:
            return JobState.COMPLETED_WITH_ERRORS if self.errors else JobState.COMPLETED
        if self.total == 0:
            return JobState.COMPLETED
        return JobState.RUNNING if self.done or self.started_at else JobState.QUEUED

    def percent(self) -> float:
        return 100.0 if not self.total else round(100.0 * self.done / self.total, 1)

    def eta(self, now: datetime) -> datetime | None:
        """Projected finish from the observed rate since the first item started."""
        if self.state in (JobState.COMPLETED, JobState.COMPLETED_WITH_ERRORS):
            return None
        if not self.done or not self.started_at:
            return None
        elapsed = (now - self.started_at).total_seconds()
        rate = self.done / max(elapsed, 1e-3)
        return now + timedelta(seconds=(self.total - self.done) / rate)


def summarize_tallies(job: Job, tallies: Iterable[JobTally]) -> JobSummary:
    """A job's progress from its tallies (exact: each item is counted by one tally, once)."""
    summary = JobSummary(job=job, total=job.total, started_at=job.started_at)
    for t in tallies:
        summary.done += t.done
        summary.passed += t.passed
        summary.failed += t.failed
        summary.errors += t.errors
        summary.throttled += t.throttled
        for key, count in t.by_message_id.items():
            summary.by_message_id[key] = summary.by_message_id.get(key, 0) + count
        for key, ids in t.failures.items():
            summary.failures.setdefault(key, []).extend(ids)
        if t.started_at and (summary.started_at is None or t.started_at < summary.started_at):
            summary.started_at = t.started_at
        if t.finished_at and (summary.finished_at is None or t.finished_at > summary.finished_at):
            summary.finished_at = t.finished_at
    return summary


def summarize(job: Job, items: Iterable[JobItem]) -> JobSummary:
    """A job's progress from its items (the source of truth; O(items))."""
    tally = JobTally("items")
    for item in items:
        tally = tally.counting(None, item, job.created_at)
    return summarize_tallies(job, [replace(tally, started_at=None)] if tally.done or tally.throttled else [])
