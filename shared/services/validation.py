"""The Validation Test use cases: unsaved form values, a saved profile, its history, and the
outbox relay that publishes outcomes whose first publication failed.

A saved profile's test reads Key Vault once (the version the profile references), runs the test
(:func:`shared.domain.validation_test.run_validation_test`), writes the history record and its
outbox entry together, merges ``lastValidation`` into the profile, then publishes the outcome.
An outcome whose publication fails stays in the outbox and :meth:`ValidationService.relay_outbox`
publishes it later, so no outcome is lost.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Callable

from shared.contract.validation import outcome_json
from shared.domain.errors import DependencyUnavailable, ProfileError
from shared.domain.ports import (CertificateStore, OutcomePublisher, ProfileRepository, SecretStore, ValidationHistory,
                                 ValidationRecord)
from shared.domain.probes import AccountProbe
from shared.domain.profile import (HistoryEntry, LastValidation, Password, ServiceAccountProfile, certificate_alert)
from shared.domain.validation import LEGACY, AppValidationForm, ValidationForm, ValidationOutcome
from shared.domain.validation_test import DEFAULT_DEADLINE_SECONDS, MAX_INLINE_WAIT, deadline, run_validation_test
from shared.telemetry import current_traceparent, current_tracestate

if TYPE_CHECKING:
    from shared.services.explanations import ExplanationService

log = logging.getLogger(__name__)


class Publish(str, Enum):
    """Publication policies: every outcome, or only a change of status/messageId (scheduled runs)."""

    ALWAYS = "always"
    ON_CHANGE = "onChange"


def changed(previous: LastValidation | None, outcome: ValidationOutcome) -> bool:
    """A profile that starts failing is news; one that fails the same way again is not."""
    return previous is None or (previous.status, previous.message_id) != (outcome.status, outcome.message_id)


@dataclass
class ValidationService:
    profiles: ProfileRepository
    secrets: SecretStore
    history: ValidationHistory
    publisher: OutcomePublisher
    probe: AccountProbe
    reserved_ip_ranges: tuple[str, ...]
    #: One overall deadline per test, shared by its Key Vault read and every upstream request.
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS
    #: App profiles: Key Vault signs their client assertions; ``consent_url(tenant, client id)``.
    certificates: CertificateStore | None = None
    consent_url: Callable[[str, str], str] = lambda tenant_id, client_id: ""
    #: Names a blocking policy from the tenant's sign-in log (None: not wired).
    explanations: "ExplanationService | None" = None

    # -- the HTTP use cases ---------------------------------------------------------------------
    def test_form(self, form: ValidationForm, *, correlation_id: str) -> ValidationOutcome:
        """The Validation Test of unsaved form values: the password is used for this sign-in only."""
        return run_validation_test(form, probe=self.probe, reserved_ip_ranges=self.reserved_ip_ranges,
                                   correlation_id=correlation_id, deadline_seconds=self.deadline_seconds)

    def validate_saved_profile(self, tenant_id: str, profile_id: str, *,
                               correlation_id: str) -> tuple[ValidationOutcome, ValidationRecord]:
        """Test a saved profile, store the outcome and publish it (``POST .../validate``).

        :return: (the outcome, its history record). Raises ProfileNotFound, SecretMissing,
            DependencyUnavailable (Key Vault or Storage down).
        """
        profile = self.profiles.get(tenant_id, profile_id)
        outcome = self._annotated(profile, self.run(profile, correlation_id=correlation_id))
        record, should_publish = self.store(profile, outcome, correlation_id=correlation_id, reason="manual")
        if should_publish:
            self.publish(record)
        return outcome, record

    def list_validations(self, tenant_id: str, profile_id: str, *, limit: int = 50) -> list[ValidationRecord]:
        """A profile's history, newest first (ProfileNotFound for another tenant's profile)."""
        self.profiles.get(tenant_id, profile_id)
        return self.history.list(tenant_id, profile_id, limit=limit)

    # -- steps, also used by the queue worker ---------------------------------------------------
    def run(self, profile: ServiceAccountProfile, *, correlation_id: str,
            max_inline_wait: float = MAX_INLINE_WAIT) -> ValidationOutcome:
        """The Validation Test of a saved profile (one Key Vault read; an app profile: no read, one
        sign operation per token), without storing anything. Key Vault counts against the deadline."""
        if profile.app is not None:
            return self._run_app(profile, correlation_id=correlation_id, max_inline_wait=max_inline_wait)
        with deadline(self.deadline_seconds):
            password = self.secrets.get_secret(profile.secret) if profile.secret else Password("")
            return run_validation_test(
                ValidationForm(tenant_id=profile.tenant_id, username=profile.username, password=password,
                               mfa_enabled=profile.mfa_enabled, admin_center=profile.admin_center),
                probe=self.probe, reserved_ip_ranges=self.reserved_ip_ranges, correlation_id=correlation_id,
                max_inline_wait=max_inline_wait, deadline_seconds=self.deadline_seconds)

    def _annotated(self, profile: ServiceAccountProfile, outcome: ValidationOutcome) -> ValidationOutcome:
        if self.explanations is None or outcome.explanation is not None:
            return outcome
        return self.explanations.annotate(profile, outcome)

    def _run_app(self, profile: ServiceAccountProfile, *, correlation_id: str,
                 max_inline_wait: float) -> ValidationOutcome:
        app = profile.app
        if self.certificates is None:
            raise DependencyUnavailable("Key Vault certificates")
        form = AppValidationForm(
            tenant_id=profile.tenant_id, client_id=app.client_id, certificate=app.certificate,
            sign=self.certificates.sign_digest, admin_consent_url=self.consent_url(profile.tenant_id, app.client_id),
            workload=app.workload, sharepoint_url=app.sharepoint_url, previous_certificate=app.previous_certificate)
        return run_validation_test(form, probe=self.probe, reserved_ip_ranges=self.reserved_ip_ranges,
                                   correlation_id=correlation_id, max_inline_wait=max_inline_wait,
                                   deadline_seconds=self.deadline_seconds)

    def store(self, profile: ServiceAccountProfile, outcome: ValidationOutcome, *, correlation_id: str,
              reason: str, job_id: str | None = None, publish: Publish = Publish.ALWAYS,
              record_id: str | None = None, outbox: bool = True) -> tuple[ValidationRecord, bool]:
        """Write the history record (with its outbox entry, unless the caller's own delivery is
        the outbox: a queue message that comes back until it completes) and ``lastValidation``.

        :return: (record, whether it is to be published under the ``publish`` policy).
        """
        outcome = self._annotated(profile, outcome)
        rec = ValidationRecord(tenant_id=profile.tenant_id, profile_id=profile.id,
                               record_id=record_id or uuid.uuid4().hex, at=outcome.tested_at,
                               status=outcome.status, message_id=outcome.message_id, outcome=outcome_json(outcome),
                               reason=reason, correlation_id=correlation_id, job_id=job_id,
                               traceparent=current_traceparent(), tracestate=current_tracestate())
        alert = _certificate_alert(profile, outcome)
        should_publish = (publish is Publish.ALWAYS or changed(profile.last_validation, outcome)
                          or (alert is not None and alert != (profile.app.alert if profile.app else None)))
        self.history.add(rec, publish=should_publish and outbox)
        if self.explanations is not None:
            self.explanations.schedule(rec)
        last = LastValidation(outcome.status, outcome.message_id, outcome.tested_at, job_id=job_id)
        if not self._settle_app_profile(profile, outcome, last, alert):
            self.profiles.record_validation(
                profile, last, legacy_apps_blocked=_legacy_apps_blocked(outcome),
                sharepoint_url=_learned_sharepoint_url(profile, outcome),
                certificate_alert=None if profile.app is None else (-1 if alert is None else alert))
        log.info("profile validated", extra={"correlation_id": correlation_id, "tenant_id": profile.tenant_id,
                                             "profile_id": profile.id, "status": outcome.status,
                                             "message_id": outcome.message_id, "reason": reason,
                                             "published": should_publish})
        return rec, should_publish

    def _settle_app_profile(self, profile: ServiceAccountProfile, outcome: ValidationOutcome, last: LastValidation,
                            alert: int | None) -> bool:
        """After an app profile's first passed test: soft-delete the password it was migrated from,
        and end a rotation's overlap once the new certificate signed. One conditional row update
        (a concurrent edit wins; the next passed test settles it). True when the row was written."""
        app = profile.app
        if app is None or not outcome.passed:
            return False
        retire_secret = profile.secret is not None
        end_overlap = app.previous_certificate is not None and outcome.certificate_rotated is not False
        if not (retire_secret or end_overlap):
            return False
        now = outcome.tested_at
        updated = replace(profile, last_validation=last,
                          app=replace(app, sharepoint_url=outcome.sharepoint_url or app.sharepoint_url, alert=alert,
                                      previous_certificate=None if end_overlap else app.previous_certificate))
        if retire_secret:
            try:
                self.secrets.delete_secret(profile.secret.name)  # soft delete: recoverable
            except DependencyUnavailable:
                log.warning("old password kept: Key Vault unavailable; the next passed test retires it",
                            extra={"profile_id": profile.id})
                return False
            updated = replace(updated, secret=None, password_updated_at=None).with_history(
                HistoryEntry(now, "secretRetired", "the app profile passed its Validation Test; the password of the "
                                                   "user account it replaced was soft-deleted"))
        if end_overlap:
            updated = updated.with_history(HistoryEntry(
                now, "certificateRotated", f"the new certificate {app.certificate.thumbprint} signed in; "
                                           f"{app.previous_certificate.thumbprint} is no longer used"))
        try:
            self.profiles.update(updated, previous_name=profile.name, etag=profile.etag or "")
        except ProfileError:
            return False
        return True

    def publish(self, record: ValidationRecord) -> bool:
        """Publish and clear the outbox entry; False (kept in the outbox) when the queue is down."""
        try:
            self.publisher.publish(record)
        except DependencyUnavailable:
            log.warning("outcome kept in the outbox: the outcomes queue is unavailable",
                        extra={"correlation_id": record.correlation_id, "profile_id": record.profile_id})
            return False
        self.history.mark_published(record)
        return True

    def deliver(self, record: ValidationRecord) -> bool:
        """Publish a record stored without an outbox entry; if the queue does not take it, give it
        one now (so the relay publishes it later) and return False."""
        try:
            self.publisher.publish(record)
        except DependencyUnavailable:
            log.warning("outcome put in the outbox: the outcomes queue is unavailable",
                        extra={"correlation_id": record.correlation_id, "profile_id": record.profile_id})
            self.history.add(record, publish=True)
            return False
        return True

    def relay_outbox(self, *, limit: int = 500) -> int:
        """Publish outcomes whose first publication failed. Returns how many went out."""
        return sum(1 for rec in self.history.unpublished(limit=limit) if self.publish(rec))


def _legacy_apps_blocked(outcome: ValidationOutcome) -> bool | None:
    """What the test learned about SharePoint's "block apps that don't use modern authentication":
    blocked, or (since 1 May 2026) the legacy sign-in retired, which blocks it for good."""
    if outcome.message_id in ("LEGACY_AUTH_BLOCKED", "LEGACY_AUTH_RETIRED"):
        return True
    if outcome.passed and outcome.evidence.sign_in_path == LEGACY:
        return False
    return None


def _certificate_alert(profile: ServiceAccountProfile, outcome: ValidationOutcome) -> int | None:
    """The certificate threshold (30, 14, 7 days, 0: expired) this app profile's outcome has crossed."""
    cert = getattr(outcome, "certificate", None)
    if profile.app is None or cert is None:
        return None
    return certificate_alert(cert.days_left)


def _learned_sharepoint_url(profile: ServiceAccountProfile, outcome: ValidationOutcome) -> str | None:
    url = getattr(outcome, "sharepoint_url", None)
    if profile.app is None or not url or url == profile.app.sharepoint_url:
        return None
    return url
