"""Name the policy that blocked a saved profile's Validation Test, from the tenant's sign-in log.

When a saved profile's test fails with Conditional Access, MFA or security-defaults evidence
(:func:`shared.domain.diagnosis.needs_explanation`), the outcome is stored at once with an
explanation ``pending`` (or ``unavailable``, saying what would let the product name the policy: an
app profile in the tenant holding ``AuditLog.Read.All`` and ``Policy.Read.All``), and a follow-up
message goes on ``outcome-explanations``. Entra's sign-in log has the entry minutes later; each look
costs a Graph token of the tenant's diagnosis app profile (Key Vault signs) and one log query, plus
one policy read per failed policy and the security-defaults read when it is found. Until the entry
arrives the message comes back after a doubling delay; past ``max_wait_seconds`` after the test the
explanation ends ``unavailable``. The stored record is then updated and ``outcome.explained`` is
published once (a redelivered message finds the record settled and does nothing).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Callable

from shared.contract.validation import ExplanationOut
from shared.domain import diagnosis
from shared.domain.diagnosis import (DIAGNOSIS_PERMISSIONS, EXPLAINED, PENDING, ExplainMessage, Explanation,
                                     explain, needs_explanation, next_look, unavailable)
from shared.domain.errors import DependencyUnavailable, DiagnosisRefused, ProfileNotFound
from shared.domain.ports import (CertificateStore, ExplanationQueue, OutcomePublisher, ProfileRepository,
                                 SignInDiagnostics, ValidationHistory, ValidationRecord)
from shared.domain.probes import AccountProbe
from shared.domain.profile import Kind, ServiceAccountProfile
from shared.domain.validation import APP, ValidationOutcome

log = logging.getLogger(__name__)
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


class ExplainResult(str, Enum):
    EXPLAINED = "explained"
    UNAVAILABLE = "unavailable"
    WAITING = "waiting"
    SETTLED = "alreadySettled"
    GONE = "recordGone"
    POISONED = "poisoned"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class ExplanationService:
    profiles: ProfileRepository
    history: ValidationHistory
    publisher: OutcomePublisher
    probe: AccountProbe
    diagnostics: SignInDiagnostics
    queue: ExplanationQueue
    certificates: CertificateStore | None
    reserved_ip_ranges: tuple[str, ...]
    clock: Callable[[], datetime] = _utcnow
    first_look_seconds: int = 60
    max_delay_seconds: int = 300
    #: How long after the test the sign-in log entry is waited for.
    max_wait_seconds: int = 1800
    graph_scope: str = GRAPH_SCOPE

    # -- at the test ------------------------------------------------------------------------
    def annotate(self, profile: ServiceAccountProfile, outcome: ValidationOutcome) -> ValidationOutcome:
        """The outcome as stored: with ``explanation`` pending (a follow-up will look) or
        unavailable (no diagnosis app profile in the tenant), or unchanged when nothing applies."""
        if not needs_explanation(outcome.evidence.aadsts_code):
            return outcome
        if self._diagnosis_profile(profile.tenant_id) is None:
            return replace(outcome, explanation=unavailable(
                "To name the policy, add an app profile to this tenant whose application has the Microsoft Graph "
                "application permissions " + " and ".join(DIAGNOSIS_PERMISSIONS) + " (admin consent given).",
                missing=DIAGNOSIS_PERMISSIONS, at=self.clock()))
        return replace(outcome, explanation=diagnosis.pending(self.clock()))

    def schedule(self, record: ValidationRecord) -> None:
        """Queue the first look for a stored record whose explanation is pending (best effort: a
        queue that does not take it leaves the explanation pending, said in the log)."""
        if (record.outcome.get("explanation") or {}).get("state") != PENDING:
            return
        message = ExplainMessage(record.tenant_id, record.profile_id, record.record_id, record.correlation_id,
                                 record.at, traceparent=record.traceparent, tracestate=record.tracestate)
        try:
            self.queue.send(message, delay_seconds=self.first_look_seconds)
        except DependencyUnavailable:
            log.warning("explanation not scheduled: the queue is unavailable",
                        extra={"correlation_id": record.correlation_id, "profile_id": record.profile_id})

    # -- the follow-up ----------------------------------------------------------------------
    def process(self, text: str) -> ExplainResult:
        msg, record, done = self._pending(text)
        if done is not None:
            return done
        try:
            profile = self.profiles.get(msg.tenant_id, msg.profile_id)
        except ProfileNotFound:
            return ExplainResult.GONE
        explanation = self._look(profile, record)
        if explanation is None:
            if self.clock() - msg.tested_at < timedelta(seconds=self.max_wait_seconds):
                delay = next_look(msg.attempt + 1, first_seconds=self.first_look_seconds,
                                  cap_seconds=self.max_delay_seconds)
                self.queue.send(replace(msg, attempt=msg.attempt + 1), delay_seconds=delay)
                return ExplainResult.WAITING
            explanation = unavailable(
                f"The tenant's sign-in log had no entry for this test {self.max_wait_seconds // 60} minutes after it "
                "(correlation id " + (record.correlation_id or "none") + ").", at=self.clock())
        return self._settle(record, explanation)

    def process_poison(self, text: str) -> ExplainResult:
        """A follow-up that failed on every delivery (Graph or storage down throughout): the
        outcome says so instead of staying pending."""
        _, record, done = self._pending(text)
        if done is not None:
            return done
        return self._settle(record, unavailable(
            "The sign-in log could not be read: Microsoft Graph or the service's storage did not answer on any try.",
            at=self.clock()))

    def _pending(self, text: str) -> tuple[ExplainMessage | None, ValidationRecord | None, ExplainResult | None]:
        """The message and its record when the record still waits for its explanation; else the
        result that ends the message (unreadable, record gone, already settled)."""
        try:
            msg = ExplainMessage.from_json(text)
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable explanation message")
            return None, None, ExplainResult.POISONED
        record = self._record(msg)
        if record is None:
            return msg, None, ExplainResult.GONE
        if (record.outcome.get("explanation") or {}).get("state") != PENDING:
            return msg, record, ExplainResult.SETTLED
        return msg, record, None

    def _look(self, profile: ServiceAccountProfile, record: ValidationRecord) -> Explanation | None:
        now = self.clock()
        grant, lacking = self._diagnosis_grant(profile.tenant_id, record.correlation_id)
        if grant is None:
            return unavailable(
                "No app profile of this tenant can read the sign-in log: its application needs the Microsoft Graph "
                "application permissions " + ", ".join(lacking) + " with admin consent.", missing=lacking, at=now)
        evidence = record.outcome.get("evidence") or {}
        is_app = evidence.get("signInPath") == APP
        try:
            entry = self.diagnostics.find_sign_in(
                grant, correlation_id=evidence.get("correlationId") or record.correlation_id,
                user=None if is_app else profile.username, app_id=profile.app.client_id if is_app else None,
                since=record.at - timedelta(minutes=5))
            if entry is None:
                return None
            failed = [p.id for p in entry.policies if p.result == "failure"]
            policies = self.diagnostics.policies(grant, failed) if failed else {}
            defaults = None if failed else self.diagnostics.security_defaults(grant)
        except DiagnosisRefused as exc:
            return unavailable(exc.reason, missing=exc.missing, at=now)
        account = profile.app.client_id if is_app else profile.username
        return explain(entry, policies, security_defaults=defaults, account=account, app_profile=is_app,
                       reserved_ip_ranges=self.reserved_ip_ranges, at=now)

    def _settle(self, record: ValidationRecord, explanation: Explanation) -> ExplainResult:
        out = ExplanationOut.model_validate(explanation, from_attributes=True).dump()
        settled = replace(record, outcome={**record.outcome, "explanation": out})
        self.history.add(settled, publish=False)
        try:
            self.publisher.publish_explained(settled)
        except DependencyUnavailable:
            # Stored; the event is lost only if the queue never comes back before the message's
            # own retry: put the pending state back so the redelivery publishes it.
            self.history.add(record, publish=False)
            raise
        log.info("outcome explained", extra={"correlation_id": record.correlation_id, "profile_id": record.profile_id,
                                             "state": explanation.state,
                                             "policies": [p.display_name for p in explanation.policies]})
        return ExplainResult.EXPLAINED if explanation.state == EXPLAINED else ExplainResult.UNAVAILABLE

    # -- helpers ----------------------------------------------------------------------------
    def _record(self, msg: ExplainMessage) -> ValidationRecord | None:
        for record in self.history.list(msg.tenant_id, msg.profile_id, limit=50):
            if record.record_id == msg.record_id:
                return record
        return None

    def _app_profiles(self, tenant_id: str) -> list[ServiceAccountProfile]:
        """The tenant's app profiles, passed ones first."""
        apps = list(self.profiles.list_all(tenant_id, kind=Kind.APP.value))
        apps.sort(key=lambda p: (p.last_validation is None or p.last_validation.status != "passed", p.created_at))
        return apps

    def _diagnosis_profile(self, tenant_id: str) -> ServiceAccountProfile | None:
        apps = self._app_profiles(tenant_id)
        return apps[0] if apps else None

    def _diagnosis_grant(self, tenant_id: str, correlation_id: str, *, tries: int = 3):
        """A Graph token whose roles hold the diagnosis permissions, from the first of the tenant's
        app profiles (at most ``tries``) that has them: ``(grant, ())`` or ``(None, what is lacking)``."""
        lacking: tuple[str, ...] = DIAGNOSIS_PERMISSIONS
        if self.certificates is None:
            return None, lacking
        for diag in self._app_profiles(tenant_id)[:tries]:
            app = diag.app
            token = self.probe.app_token(tenant_id, app.client_id, app.certificate, self.certificates.sign_digest,
                                         scope=self.graph_scope, correlation_id=correlation_id, step="diagnosis")
            if not token.ok:
                continue
            held = {r.lower() for r in token.role_names}
            lacking = tuple(p for p in DIAGNOSIS_PERMISSIONS if p.lower() not in held)
            if not lacking:
                return token.grant, ()
        return None, lacking
