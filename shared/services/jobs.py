"""Batch checks and scheduled revalidation over the ``validation-requests`` queue.

Fan-out: a job is created as its row plus one fan-out message per 250 profiles; the worker turns
each into one message per profile. Exactness under redelivery: each (job, profile) gets one item
row, inserted by the worker that claims it (an insert cannot succeed twice) or updated under its
ETag; the worker writes the final state once and publishes once, so a copy of the message that
arrives later finds the item final and does nothing, and a copy that arrives while another is
running is put back with a delay instead of validating twice.

Storage round trips of one batch validation (worker side; counted by
``tests/integration/test_storage_round_trips.py`` on the SDK's transport), and why each is needed:

1. insert the item's claim (only one copy of a message may validate a profile);
2. read the profile (its user name and the secret version to read);
3. upsert the history row (no outbox entry: the work message is the outbox until it completes);
4. merge ``lastValidation`` into the profile (no read first);
5. send the outcome event (only when it is to be published);
6. the item's final state and this process's :class:`JobTally` in one transaction (the commit point).

Six, plus one read of the job row per job and process. Job status reads the job row and its
tallies: two round trips whatever the job's size. (Was: 7.15 per validation and a read of every
item per status poll.)

Throttling: an upstream 429/503 with ``Retry-After`` does not fail the message; the worker sends
a copy with that visibility delay (``throttled`` + 1) and completes the original, so the message
does not burn its dequeue count. After :data:`MAX_THROTTLED` such rounds the item is an error.
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Callable

from shared.domain.errors import NotFound, PreconditionFailed, ProfileNotFound, SecretMissing
from shared.domain.jobs import (FANOUT_CHUNK, FanoutMessage, ItemState, Job, JobItem, JobSummary, JobTally, Reason,
                                Selection, WorkMessage, summarize_tallies)
from shared.domain.ports import JobRepository, ProfileRepository, WorkQueue
from shared.services.validation import Publish, ValidationService
from shared.telemetry import current_traceparent, current_tracestate

log = logging.getLogger(__name__)

MAX_THROTTLED = 8
#: Jobs whose tally a process keeps in memory (a tally is only needed while the job runs).
MAX_TALLIES = 256
#: How long a worker owns an item it claimed, past the Validation Test's own deadline (which bounds
#: the validation): the item's storage writes and the outcome's publication. A worker that dies
#: holding a claim delays that item by this much (was a fixed 120 s: two minutes per item in flight
#: after a host crash, whatever the deadline).
CLAIM_MARGIN_SECONDS = 15
#: Delay before a copy that found its item claimed by another worker looks again.
BUSY_DELAY_SECONDS = 10
_TRANSIENT = ("THROTTLED", "SERVICE_UNAVAILABLE")


class WorkResult(str, Enum):
    """What the worker did with one ``validation-requests`` message (its log line)."""

    POISONED = "poisoned"
    FANNED_OUT = "fannedOut"
    UNKNOWN_JOB = "unknownJob"
    DUPLICATE = "duplicate"
    BUSY = "busy"
    PROFILE_NOT_FOUND = "profileNotFound"
    SECRET_MISSING = "secretMissing"
    THROTTLED = "throttled"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    # the poison queue's handler
    UNREADABLE = "unreadable"
    NO_JOB = "noJob"
    ALREADY_FINAL = "alreadyFinal"
    RACED = "raced"


@dataclass
class JobServices:
    jobs: JobRepository
    profiles: ProfileRepository
    runs: ValidationService
    work: WorkQueue
    clock: Callable[[], datetime]
    #: Scheduled revalidation: profiles last validated longer ago than this (0: all) ...
    revalidation_max_age_hours: int = 24
    #: ... with their work messages released evenly over this window.
    revalidation_spread_seconds: int = 0
    #: Jobs this process has seen exist (one read per job per process, not per message).
    _known: set = field(default_factory=set)
    #: This process's tally of each job, written with every item state it counts (see JobTally).
    _shard: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    _tallies: "OrderedDict[str, JobTally]" = field(default_factory=OrderedDict)
    _tally_lock: threading.Lock = field(default_factory=threading.Lock)

    # -- creating jobs ----------------------------------------------------------------------
    def select(self, tenant_id: str, selection: Selection) -> list[str]:
        if selection.profile_ids:
            return list(selection.profile_ids)
        filters = {"last_status": selection.last_status} if selection.last_status else {}
        return [p.id for p in self.profiles.list_all(tenant_id, **filters)]

    def create_job(self, tenant_id: str, selection: Selection, *, correlation_id: str,
                   reason: Reason = Reason.BATCH, profile_ids: list[str] | None = None,
                   spread_seconds: int = 0) -> JobSummary:
        """Create the job row, then enqueue its profiles in fan-out chunks (the worker sends one
        message per profile from each chunk).

        :param profile_ids: the profiles when the caller has selected them already (scheduled runs).
        :param spread_seconds: spread the per-profile messages' visibility evenly over this
            window (scheduled runs), instead of releasing them all at once.
        :return: the new job's summary (nothing done yet).
        """
        ids = profile_ids if profile_ids is not None else self.select(tenant_id, selection)
        job = Job(id=str(uuid.uuid4()), tenant_id=tenant_id, reason=reason, selection=selection.summary(), total=len(ids),
                  created_at=self.clock(), correlation_id=correlation_id)
        self.jobs.add(job)
        step = spread_seconds / len(ids) if ids and spread_seconds else 0.0
        traceparent, tracestate = current_traceparent(), current_tracestate()  # the job's trace
        sent = self.work.send_many(
            (FanoutMessage(tenant_id, job.id, tuple(ids[i:i + FANOUT_CHUNK]), reason, correlation_id, offset=i,
                           spread_step=step, traceparent=traceparent, tracestate=tracestate), 0)
            for i in range(0, len(ids), FANOUT_CHUNK))
        log.info("validation job created", extra={"correlation_id": correlation_id, "tenant_id": tenant_id,
                                                  "job_id": job.id, "total": job.total, "sent": sent,
                                                  "reason": reason.value})
        return summarize_tallies(job, ())

    def get_job(self, tenant_id: str, job_id: str) -> JobSummary:
        """The job's progress: its row and its tallies (two round trips whatever its size)."""
        job = self.jobs.get(tenant_id, job_id)
        return summarize_tallies(job, self.jobs.tallies(job.id))

    # -- the worker -------------------------------------------------------------------------
    def process(self, text: str) -> WorkResult:
        """Handle one ``validation-requests`` message. Returns what happened (for the log line).

        Raises only for transient storage trouble (the host retries, then poisons).
        """
        try:
            msg = WorkMessage.from_json(text)
        except (ValueError, KeyError, TypeError):
            self.work.send_to_poison(text)
            log.error("unreadable work message moved to poison")
            return WorkResult.POISONED
        if isinstance(msg, FanoutMessage):
            # A redelivered chunk sends its messages again: harmless, each profile is claimed once.
            sent = self.work.send_many(msg.expand(traceparent=current_traceparent(), tracestate=current_tracestate()))
            log.info("fanned out %d work messages", sent, extra={"correlation_id": msg.correlation_id,
                                                                  "job_id": msg.job_id})
            return WorkResult.FANNED_OUT
        if msg.job_id is None:
            return self._validate(msg, None, None)
        now = self.clock()
        if msg.job_id not in self._known:
            try:
                self.jobs.get(msg.tenant_id, msg.job_id)
            except NotFound:
                log.warning("work message for an unknown job dropped",
                            extra={"correlation_id": msg.correlation_id, "job_id": msg.job_id})
                return WorkResult.UNKNOWN_JOB
            self._known.add(msg.job_id)
        claim_until = now + timedelta(seconds=self.runs.deadline_seconds + CLAIM_MARGIN_SECONDS)
        item = JobItem(msg.job_id, msg.profile_id)
        try:  # the first delivery inserts its claim: one call, and only one copy can succeed
            etag = self.jobs.create_item(item, claimed_until=claim_until)
        except PreconditionFailed:
            try:
                item, claimed_until, etag = self.jobs.get_item(msg.job_id, msg.profile_id)
            except NotFound as exc:  # deleted in between: let the host retry
                raise PreconditionFailed() from exc
            if item.state.final:
                return WorkResult.DUPLICATE  # counted once; an outcome whose publication failed waits in the outbox
            if claimed_until and claimed_until > now:
                self.work.send(msg, delay_seconds=BUSY_DELAY_SECONDS)
                return WorkResult.BUSY
            try:
                etag = self.jobs.save_item(item, etag=etag, claimed_until=claim_until)
            except PreconditionFailed:
                self.work.send(msg, delay_seconds=BUSY_DELAY_SECONDS)
                return WorkResult.BUSY
        try:
            return self._validate(msg, item, etag)
        except Exception:
            # Let the host's retry (and, in the end, the poison queue) see this message, not a claim.
            try:
                self.jobs.save_item(item, etag=etag)
            except Exception:  # noqa: BLE001 - the claim then simply expires
                log.warning("could not release the claim of a failed job item", extra={"job_id": msg.job_id})
            raise

    def _validate(self, msg: WorkMessage, item: JobItem | None, etag: str | None) -> WorkResult:
        try:
            profile = self.profiles.get(msg.tenant_id, msg.profile_id)
        except ProfileNotFound:
            if item is not None:
                self._finish(item, etag, ItemState.ERROR, "PROFILE_NOT_FOUND", "The profile no longer exists.")
            return WorkResult.PROFILE_NOT_FOUND
        try:
            outcome = self.runs.run(profile, correlation_id=msg.correlation_id, max_inline_wait=0)
        except SecretMissing as exc:  # not transient: retrying cannot help
            if item is not None:
                self._finish(item, etag, ItemState.ERROR, "SECRET_MISSING", str(exc))
            return WorkResult.SECRET_MISSING
        if outcome.message_id in _TRANSIENT and msg.throttled < MAX_THROTTLED:
            delay = outcome.retry_after_seconds or min(60, 2 ** (msg.throttled + 1))
            retry = replace(msg, throttled=msg.throttled + 1)
            if current_traceparent():  # the retry continues from this attempt's span
                retry = replace(retry, traceparent=current_traceparent(), tracestate=current_tracestate())
            self.work.send(retry, delay_seconds=delay)
            if item is not None:  # release the claim so the copy can take it (and count the round)
                self._save_counted(item, replace(item, throttled=item.throttled + 1), etag)
            log.info("throttled: message put back", extra={"correlation_id": msg.correlation_id,
                                                           "profile_id": msg.profile_id, "delay": delay})
            return WorkResult.THROTTLED
        # The work message is this outcome's outbox: the history row is written without an outbox
        # entry, the outcome published, and only then the item made final (the commit point). If
        # the worker stops before that, the host redelivers the message and the claim expires, so
        # the outcome is stored and published again under the same record id (consumers drop it).
        rec, should_publish = self.runs.store(
            profile, outcome, correlation_id=msg.correlation_id, reason=msg.reason.value, job_id=msg.job_id,
            publish=Publish.ON_CHANGE if msg.reason is Reason.SCHEDULED else Publish.ALWAYS,
            record_id=f"{msg.job_id}-{profile.id}" if msg.job_id else None, outbox=item is None)
        if should_publish:
            self.runs.deliver(rec) if item is not None else self.runs.publish(rec)
        state = {"passed": ItemState.PASSED, "failed": ItemState.FAILED}.get(outcome.status, ItemState.ERROR)
        if item is not None:
            self._finish(item, etag, state, outcome.message_id, outcome.message, finished_at=outcome.tested_at)
        return WorkResult(state.value)

    def _finish(self, item: JobItem, etag: str | None, state: ItemState, message_id: str | None, detail: str,
                *, finished_at: datetime | None = None) -> str:
        done = replace(item, state=state, message_id=message_id, detail=(detail or "")[:500],
                       finished_at=finished_at or self.clock())
        return self._save_counted(item, done, etag or "*")

    def _save_counted(self, before: JobItem | None, after: JobItem, etag: str | None) -> str:
        """Write ``after`` together with this process's tally of its job (one transaction; the
        tally changes only if the write succeeds). ``before`` None: insert a new item."""
        with self._tally_lock:
            current = self._tallies.pop(after.job_id, None) or JobTally(self._shard)
            tally = current.counting(before, after, self.clock())
            try:
                if before is None:
                    new_etag = self.jobs.create_item(after, tally=tally)
                else:
                    new_etag = self.jobs.save_item(after, etag=etag or "*", tally=tally)
            except Exception:
                self._tallies[after.job_id] = current
                raise
            self._tallies[after.job_id] = tally
            while len(self._tallies) > MAX_TALLIES:
                self._tallies.popitem(last=False)
        return new_etag

    def process_poison(self, text: str) -> WorkResult:
        """A message the host gave up on: its item becomes an error instead of pending forever."""
        try:
            msg = WorkMessage.from_json(text)
        except (ValueError, KeyError, TypeError):
            return WorkResult.UNREADABLE
        if isinstance(msg, FanoutMessage):
            # The chunk could not be expanded: every profile in it is an error of the job.
            marked = [self._poison_item(msg.job_id, pid, msg.correlation_id) for pid in msg.profile_ids]
            return WorkResult.ERROR if WorkResult.ERROR in marked else WorkResult.ALREADY_FINAL
        if msg.job_id is None:
            return WorkResult.NO_JOB
        return self._poison_item(msg.job_id, msg.profile_id, msg.correlation_id)

    def _poison_item(self, job_id: str, profile_id: str, correlation_id: str) -> WorkResult:
        detail = "The validation could not be processed after repeated attempts."
        try:
            item, _, etag = self.jobs.get_item(job_id, profile_id)
        except NotFound:
            try:
                self._save_counted(None, JobItem(job_id, profile_id, ItemState.ERROR, "POISON_MESSAGE",
                                                 detail=detail, finished_at=self.clock()), None)
            except PreconditionFailed:
                return WorkResult.RACED
            item = None
        if item is not None:
            if item.state.final:
                return WorkResult.ALREADY_FINAL
            try:
                self._finish(item, etag, ItemState.ERROR, "POISON_MESSAGE", detail)
            except PreconditionFailed:
                return WorkResult.RACED
        log.error("job item marked as error after poison", extra={"job_id": job_id, "profile_id": profile_id,
                                                                  "correlation_id": correlation_id})
        return WorkResult.ERROR

    # -- scheduled revalidation -------------------------------------------------------------
    def schedule_revalidation(self, *, correlation_id: str) -> list[JobSummary]:
        """One scheduled job per tenant over profiles last validated before now - max age (0: all)."""
        max_age_hours = self.revalidation_max_age_hours
        cutoff = self.clock() - timedelta(hours=max_age_hours) if max_age_hours else None
        by_tenant: dict[str, list[str]] = {}
        for profile in self.profiles.list_every_tenant():
            lv = profile.last_validation
            if cutoff is None or lv is None or lv.at < cutoff:
                by_tenant.setdefault(profile.tenant_id, []).append(profile.id)
        return [self.create_job(tenant, Selection(all=True), correlation_id=correlation_id, reason=Reason.SCHEDULED,
                                profile_ids=ids, spread_seconds=self.revalidation_spread_seconds)
                for tenant, ids in sorted(by_tenant.items())]
