"""Batch checks and scheduled revalidation over the ``validation-requests`` queue.

Fan-out: a job is created as its row plus one fan-out message per 250 profiles; the worker turns
each into work groups of 16 profiles (:class:`WorkGroup`), and validates a group's profiles at the
same time, each by the rules of a message of its own (:meth:`JobServices.members`).

Exactness under redelivery: each (job, profile) gets one item row, written final once (an insert
cannot succeed twice; an update is under the claim's ETag), and counted in the same atomic write,
so a copy of the message that arrives later finds the item final and counts nothing.

Backpressure: a chunk that finds more than :data:`FANOUT_BACKLOG` messages waiting is sent again
with a delay instead of expanding (one Get Queue Metadata call per chunk), so chunks of all jobs
take turns and the queue stays about two chunks long whatever the jobs' sizes. A process expands
one chunk at a time, so that each sees what the one before sent: chunks queue up behind the work
groups of the chunk before them, so they are delivered together (a 2,000-profile job's seven later
chunks arrived in one batch, all saw an empty queue, and put 224 work groups in at once).

Claims: the first delivery of a message that has no other copy (dequeue count 1, not re-sent by a
worker and not from a redelivered fan-out chunk) validates without claiming its item first: its
final state is inserted at the end. Any other delivery claims the item first (an insert, or an
update under the ETag of an expired claim), so a copy that arrives while another runs is put back
with a delay instead of validating twice. The one case left is a copy delivered again while a
first delivery still runs (the host failed to renew the message's visibility): both validate, the
second final write finds the item and counts nothing (at most one extra sign-in per such loss).

Storage round trips of one batch validation (worker side; counted by
``tests/integration/test_storage_round_trips.py`` on the SDK's transport), and why each is needed:

1. read the profile (its user name and the secret version to read);
2. upsert the history row (no outbox entry: the work message is the outbox until it completes);
3. merge ``lastValidation`` into the profile (no read first);
4. send the outcome event (only when it is to be published);
5. the item's final state and this process's :class:`JobTally` in one transaction (the commit
   point). Group commit: final states of one job that arrive while that job's previous transaction
   is in flight go together in the next one (up to 99), and the next one's leader first waits up
   to :data:`COMMIT_LINGER_SECONDS` for the job's other validations running in this process, so
   under load this is a fraction of a round trip per validation (a 1,500-profile job: 200
   transactions, 13 of one item, against 244 and 62 without the wait).

At most five, plus the claim (an insert) for a delivery that needs one. The job's existence is
read once per fan-out chunk (250 profiles), not per validation: every work group of a job comes
from a chunk that found its job. Job status reads the job row and its tallies at the same time:
two round trips whatever the job's size. (Was: 7.15, then 6 with a claim per message and a
transaction per item.)

Throttling: an upstream 429/503 with ``Retry-After`` does not fail the message; the worker sends
a copy with that visibility delay (``throttled`` + 1) and completes the original, so the message
does not burn its dequeue count. After :data:`MAX_THROTTLED` such rounds the item is an error.
"""
from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections import Counter, OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Callable

from shared.domain.errors import NotFound, PreconditionFailed, ProfileNotFound, SecretMissing
from shared.domain.jobs import (FANOUT_CHUNK, ITEMS_PER_WRITE, WORK_GROUP, FanoutMessage, ItemState, Job, JobItem,
                                JobSummary, JobTally, Reason, Selection, WorkGroup, WorkMessage, summarize_tallies)
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
#: Backpressure: a fan-out chunk waits while more messages than this wait in the queue, so that one
#: tenant's 10,000-profile job does not put 10,000 messages ahead of everyone else's work (chunks
#: of all jobs take turns), and the queue stays short (the emulator's queue operations cost in
#: proportion to its length: Azurite 3.37, measured in the README).
FANOUT_BACKLOG = 2 * -(-FANOUT_CHUNK // WORK_GROUP)  # messages: two chunks' worth of work groups
#: How long a chunk that found the queue full waits before it looks again.
FANOUT_DEFER_SECONDS = 5
#: Group commit: how long a transaction's leader waits for the final states of the job's other
#: validations running in this process (a work group's members start together but end apart, as
#: they queue for the CPU) before it writes. Without it, a 1,500-profile job took 244 transactions (2.6 per work group of
#: 16, 62 of them of one item) for 1,500 items.
COMMIT_LINGER_SECONDS = 0.05
#: Delay before a copy that found its item claimed by another worker looks again.
BUSY_DELAY_SECONDS = 10
_TRANSIENT = ("THROTTLED", "SERVICE_UNAVAILABLE")
#: The tallies read of job-status requests, made while the request's thread reads the job row
#: (threads start on first use).
_STATUS_READS = ThreadPoolExecutor(8, thread_name_prefix="job-status")


class WorkResult(str, Enum):
    """What the worker did with one ``validation-requests`` message (its log line)."""

    POISONED = "poisoned"
    FANNED_OUT = "fannedOut"
    GROUP = "group"
    DEFERRED = "deferred"
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
class _Write:
    """One item write waiting for its job's group commit; ``outcome`` gets its new ETag or error."""

    before: JobItem | None
    after: JobItem
    etag: str | None
    outcome: Future = field(default_factory=Future)


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
    #: This process's tally of each job, written with every item state it counts (see JobTally).
    _tallies: "OrderedDict[str, JobTally]" = field(default_factory=OrderedDict)
    #: Group commit: item writes waiting per job, the jobs whose transaction is in flight (or whose
    #: leader lingers), and the job's validations running in this process.
    _pending: dict = field(default_factory=dict)
    _committing: set = field(default_factory=set)
    _running: Counter = field(default_factory=Counter)
    _commit: threading.Condition = field(default_factory=threading.Condition)
    #: Fan-out: this process expands one chunk at a time (see "Backpressure" above).
    _fanout: threading.Lock = field(default_factory=threading.Lock)

    # -- creating jobs ----------------------------------------------------------------------
    def select(self, tenant_id: str, selection: Selection) -> list[str]:
        if selection.profile_ids:
            return list(selection.profile_ids)
        filters = {"last_status": selection.last_status} if selection.last_status else {}
        return [p.id for p in self.profiles.list_all(tenant_id, **filters)]

    def create_job(self, tenant_id: str, selection: Selection, *, correlation_id: str,
                   reason: Reason = Reason.BATCH, profile_ids: list[str] | None = None,
                   spread_seconds: int = 0) -> JobSummary:
        """Create the job row, then enqueue its profiles in fan-out chunks (the worker sends each
        chunk's profiles in work groups of sixteen, or one message per profile when spread).

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
        """The job's progress: its row and its tallies (two round trips whatever its size, made at
        the same time: a status read waits for the longer of the two, not their sum). The row is
        what proves the job is the tenant's: without it the tallies read is dropped unseen."""
        tallies = _STATUS_READS.submit(contextvars.copy_context().run, self.jobs.tallies, job_id)
        try:
            job = self.jobs.get(tenant_id, job_id)
        except BaseException:
            tallies.cancel()
            raise
        return summarize_tallies(job, tallies.result())

    # -- the worker -------------------------------------------------------------------------
    def process(self, text: str, *, dequeue_count: int | None = None) -> WorkResult:
        """Handle one ``validation-requests`` message. Returns what happened (for the log line).

        :param dequeue_count: the host's count of this message's deliveries (None: unknown, so
            treated as a redelivery: the item is claimed first).
        Raises only for transient storage trouble (the host retries, then poisons).
        """
        try:
            msg = WorkMessage.from_json(text)
        except (ValueError, KeyError, TypeError):
            self.work.send_to_poison(text)
            log.error("unreadable work message moved to poison")
            return WorkResult.POISONED
        if isinstance(msg, FanoutMessage):
            try:  # once per chunk: the work groups it sends are then known to have a job
                self.jobs.get(msg.tenant_id, msg.job_id)
            except NotFound:
                log.warning("fan-out message for an unknown job dropped",
                            extra={"correlation_id": msg.correlation_id, "job_id": msg.job_id})
                return WorkResult.UNKNOWN_JOB
            # A redelivered chunk sends its messages again: harmless, they claim their items first.
            again = dequeue_count is None or dequeue_count > 1
            with self._fanout:  # one chunk at a time per process: each sees the groups the last one sent
                if not again and not msg.spread_step and self.work.backlog() > FANOUT_BACKLOG:
                    self.work.send(msg, delay_seconds=FANOUT_DEFER_SECONDS)  # never expanded: a plain copy
                    return WorkResult.DEFERRED
                sent = self.work.send_many(msg.expand(traceparent=current_traceparent(),
                                                      tracestate=current_tracestate(), claim=again))
            log.info("fanned out %d work groups", sent, extra={"correlation_id": msg.correlation_id,
                                                                  "job_id": msg.job_id})
            return WorkResult.FANNED_OUT
        if isinstance(msg, WorkGroup):  # one after another here; the trigger runs members() at once
            for member in msg.messages():
                self._process_one(member, dequeue_count)
            return WorkResult.GROUP
        return self._process_one(msg, dequeue_count)

    def members(self, text: str) -> list[str]:
        """The messages one queue message stands for: a work group's, one per profile (each
        handled by :meth:`process` as if it had been sent alone, so they can run at the same time),
        else the message itself (also when it cannot be read: :meth:`process` poisons it)."""
        try:
            msg = WorkMessage.from_json(text)
        except (ValueError, KeyError, TypeError):
            return [text]
        return [m.to_json() for m in msg.messages()] if isinstance(msg, WorkGroup) else [text]

    def _process_one(self, msg: WorkMessage, dequeue_count: int | None) -> WorkResult:
        if msg.job_id is None:
            return self._validate(msg, None, None)
        item = JobItem(msg.job_id, msg.profile_id)
        with self._commit:
            self._running[msg.job_id] += 1
        try:
            if dequeue_count == 1 and not msg.claim and not msg.throttled:
                return self._validate(msg, item, None)  # the only copy: its final state is an insert
            return self._claim_and_validate(msg, item)
        finally:
            with self._commit:
                self._running[msg.job_id] -= 1
                if not self._running[msg.job_id]:
                    del self._running[msg.job_id]
                self._commit.notify_all()  # a lingering leader stops waiting for this one

    def _claim_and_validate(self, msg: WorkMessage, item: JobItem) -> WorkResult:
        """Claim the item (an insert, or an update under an expired claim's ETag), then validate;
        a final item is a duplicate, a claimed one puts this copy back with a delay."""
        now = self.clock()
        claim_until = now + timedelta(seconds=self.runs.deadline_seconds + CLAIM_MARGIN_SECONDS)
        try:  # a claim is an insert: one call, and only one copy can succeed
            etag = self.jobs.create_item(item, claimed_until=claim_until)
        except PreconditionFailed:
            try:
                item, claimed_until, etag = self.jobs.get_item(msg.job_id, msg.profile_id)
            except NotFound as exc:  # deleted in between: let the host retry
                raise PreconditionFailed() from exc
            if item.state.final:
                return WorkResult.DUPLICATE  # counted once; an outcome whose publication failed waits in the outbox
            if claimed_until and claimed_until > now:
                self.work.send(replace(msg, claim=True), delay_seconds=BUSY_DELAY_SECONDS)
                return WorkResult.BUSY
            try:
                etag = self.jobs.save_item(item, etag=etag, claimed_until=claim_until)
            except PreconditionFailed:
                self.work.send(replace(msg, claim=True), delay_seconds=BUSY_DELAY_SECONDS)
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
        """Validate and finish ``item`` (None: not part of a job). ``etag``: the claim's; None when
        the item was not claimed (it does not exist yet)."""
        try:
            profile = self.profiles.get(msg.tenant_id, msg.profile_id)
        except ProfileNotFound:
            if item is not None:
                self._finish(item, etag, ItemState.ERROR, "PROFILE_NOT_FOUND", "The profile no longer exists.")
            return WorkResult.PROFILE_NOT_FOUND
        if etag is None and item is not None and profile.last_validation is not None \
                and profile.last_validation.job_id == msg.job_id:
            # An unclaimed copy of a message whose outcome is stored already (a duplicate send, or a
            # first delivery that stopped after storing): claim first, so the account is not signed
            # in to twice for one job. The profile read it needed anyway is the check.
            return self._claim_and_validate(msg, item)
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
                self._save_counted(item if etag else None, replace(item, throttled=item.throttled + 1), etag)
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
        if item is not None and not self._finish(item, etag, state, outcome.message_id, outcome.message,
                                                 finished_at=outcome.tested_at):
            return WorkResult.DUPLICATE
        return WorkResult(state.value)

    def _finish(self, item: JobItem, etag: str | None, state: ItemState, message_id: str | None, detail: str,
                *, finished_at: datetime | None = None) -> bool:
        """Write the item's final state, counted. ``etag`` None: the item was not claimed, so the
        state is inserted; if another copy created the item meanwhile, it is finished under that
        copy's ETag, or not at all when that copy finished it (returns False: counted once)."""
        done = replace(item, state=state, message_id=message_id, detail=(detail or "")[:500],
                       finished_at=finished_at or self.clock())
        if etag is not None:
            self._save_counted(item, done, etag)
            return True
        try:
            self._save_counted(None, done, None)
            return True
        except PreconditionFailed:
            current, _, current_etag = self.jobs.get_item(item.job_id, item.profile_id)
        if current.state.final:
            log.warning("job item finished by another copy of its message", extra={
                "job_id": item.job_id, "profile_id": item.profile_id})
            return False
        self._save_counted(current, replace(done, throttled=current.throttled), current_etag)
        return True

    def _save_counted(self, before: JobItem | None, after: JobItem, etag: str | None) -> str:
        """Write ``after`` (an insert when ``etag`` is None, ``before`` then None too) together with
        this process's tally of its job: one atomic write, and the tally changes only if it succeeds.

        Group commit: one transaction per job is in flight at a time; the writes that arrive
        meanwhile wait and go together in the next one (whichever waiting thread finds none in
        flight leads it), so concurrent validations share round trips instead of queueing for them.
        """
        write = _Write(before, after, etag)
        job_id = after.job_id
        with self._commit:
            self._pending.setdefault(job_id, []).append(write)
            self._commit.notify_all()  # a lingering leader counts this one
            while not write.outcome.done() and job_id in self._committing:
                self._commit.wait()
            if write.outcome.done():
                return write.outcome.result()
            self._committing.add(job_id)
            self._linger(job_id)
            batch = self._take(job_id)
            # a tally evicted while its job still runs comes back as a new shard (never overwriting)
            tally = self._tallies.pop(job_id, None) or JobTally(uuid.uuid4().hex[:16])
        try:
            tally = self._commit_batch(job_id, batch, tally)
        finally:
            with self._commit:
                self._tallies[job_id] = tally
                while len(self._tallies) > MAX_TALLIES:
                    self._tallies.popitem(last=False)
                self._committing.discard(job_id)
                self._commit.notify_all()
        return write.outcome.result()

    def _linger(self, job_id: str) -> None:
        """Wait (up to :data:`COMMIT_LINGER_SECONDS`) while the job's validations running here
        outnumber its waiting writes, so that they share this transaction. Called with ``_commit``
        held by the leader."""
        deadline = time.monotonic() + COMMIT_LINGER_SECONDS
        while len(self._pending.get(job_id, ())) < min(self._running[job_id], ITEMS_PER_WRITE):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._commit.wait(remaining)

    def _take(self, job_id: str) -> list["_Write"]:
        """Up to :data:`ITEMS_PER_WRITE` waiting writes of the job, one per item (a second write of
        the same item waits for the next transaction). Called with ``_commit`` held."""
        waiting, batch, rest, seen = self._pending.pop(job_id), [], [], set()
        for w in waiting:
            if len(batch) < ITEMS_PER_WRITE and w.after.profile_id not in seen:
                batch.append(w)
                seen.add(w.after.profile_id)
            else:
                rest.append(w)
        if rest:
            self._pending[job_id] = rest
        return batch

    def _commit_batch(self, job_id: str, batch: list["_Write"], tally: JobTally) -> JobTally:
        """One atomic write of ``batch`` with ``tally``; returns the tally as stored afterwards. A
        stale or conflicting write fails the transaction, so then each is written alone and only it
        fails."""
        now, counted = self.clock(), tally
        for w in batch:
            counted = counted.counting(w.before, w.after, now)
        try:
            etags = self.jobs.write_items(job_id, [(w.after, w.etag) for w in batch], counted)
        except PreconditionFailed as exc:
            if len(batch) == 1:
                batch[0].outcome.set_exception(exc)
                return tally
            for w in batch:
                tally = self._commit_batch(job_id, [w], tally)
            return tally
        except Exception as exc:
            for w in batch:
                w.outcome.set_exception(exc)
            return tally
        for w, etag in zip(batch, etags):
            w.outcome.set_result(etag)
        return counted

    def process_poison(self, text: str) -> WorkResult:
        """A message the host gave up on: its item becomes an error instead of pending forever."""
        try:
            msg = WorkMessage.from_json(text)
        except (ValueError, KeyError, TypeError):
            return WorkResult.UNREADABLE
        if isinstance(msg, (FanoutMessage, WorkGroup)):
            # The chunk or group could not be handled: every profile in it is an error of the job.
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
