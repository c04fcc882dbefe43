"""Validation Tests of saved profiles and of unsaved form values, with history and outcome events.

A saved profile's test reads Key Vault once (the version the profile references), runs the test
(:func:`shared.services.validation.run_validation_test`), stores the outcome in the profile's
history and ``lastValidation``, then publishes it. The history row is written before publishing;
an outcome whose publication fails stays in the outbox and :meth:`ValidationRuns.relay_outbox`
publishes it later, so no outcome is lost.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from shared.domain.errors import DependencyUnavailable
from shared.domain.ports import OutcomePublisher, ProfileRepository, SecretStore, ValidationHistory, ValidationRecord
from shared.domain.probes import AccountProbe
from shared.domain.profile import LastValidation, Password, ServiceAccountProfile, parse_profile_input
from shared.domain.validation import LEGACY, ValidationForm, ValidationOutcome
from shared.services.validation import MAX_INLINE_WAIT, run_validation_test

log = logging.getLogger(__name__)

#: Publication policies: every outcome, or only a change of status/messageId (scheduled runs).
ALWAYS, ON_CHANGE = "always", "onChange"


def changed(previous: LastValidation | None, outcome: ValidationOutcome) -> bool:
    """A profile that starts failing is news; one that fails the same way again is not."""
    return previous is None or (previous.status, previous.message_id) != (outcome.status, outcome.message_id)


@dataclass
class ValidationRuns:
    profiles: ProfileRepository
    secrets: SecretStore
    history: ValidationHistory
    publisher: OutcomePublisher
    probe: AccountProbe
    reserved_ip_ranges: tuple[str, ...]

    def test_form(self, tenant_id: str, body: Any, *, correlation_id: str) -> ValidationOutcome:
        """The Validation Test of unsaved form values: the password is used for this sign-in only."""
        if isinstance(body, dict) and not body.get("name"):
            body = {**body, "name": "validation test"}
        form = parse_profile_input(body, require_password=True)  # the same field rules as a save
        return run_validation_test(
            ValidationForm(tenant_id=tenant_id, username=form.username, password=form.password,
                           mfa_enabled=form.mfa_enabled, admin_center=form.admin_center),
            probe=self.probe, reserved_ip_ranges=self.reserved_ip_ranges, correlation_id=correlation_id)

    def run(self, profile: ServiceAccountProfile, *, correlation_id: str,
            max_inline_wait: float = MAX_INLINE_WAIT) -> ValidationOutcome:
        """The Validation Test of a saved profile (one Key Vault read), without storing anything."""
        password = self.secrets.get_secret(profile.secret) if profile.secret else Password("")
        return run_validation_test(
            ValidationForm(tenant_id=profile.tenant_id, username=profile.username, password=password,
                           mfa_enabled=profile.mfa_enabled, admin_center=profile.admin_center),
            probe=self.probe, reserved_ip_ranges=self.reserved_ip_ranges, correlation_id=correlation_id,
            max_inline_wait=max_inline_wait)

    def store(self, profile: ServiceAccountProfile, outcome: ValidationOutcome, *, correlation_id: str,
              reason: str, job_id: str | None = None, publish: str = ALWAYS,
              record_id: str | None = None) -> tuple[ValidationRecord, bool]:
        """Write the history record (and outbox entry) and ``lastValidation``.

        :return: (record, whether it is to be published under the ``publish`` policy).
        """
        rec = ValidationRecord(tenant_id=profile.tenant_id, profile_id=profile.id,
                               record_id=record_id or uuid.uuid4().hex, at=outcome.tested_at,
                               status=outcome.status, message_id=outcome.message_id, outcome=outcome.to_dict(),
                               reason=reason, correlation_id=correlation_id, job_id=job_id)
        should_publish = publish == ALWAYS or changed(profile.last_validation, outcome)
        self.history.add(rec, publish=should_publish)
        self.profiles.record_validation(profile, LastValidation(outcome.status, outcome.message_id,
                                                                outcome.tested_at),
                                        legacy_apps_blocked=_legacy_apps_blocked(outcome))
        log.info("profile validated", extra={"correlation_id": correlation_id, "tenant_id": profile.tenant_id,
                                             "profile_id": profile.id, "status": outcome.status,
                                             "message_id": outcome.message_id, "reason": reason,
                                             "published": should_publish})
        return rec, should_publish

    def validate_profile(self, profile: ServiceAccountProfile, *, correlation_id: str,
                         reason: str = "manual") -> tuple[ValidationOutcome, ValidationRecord]:
        """Test a saved profile, store the outcome and publish it (the synchronous ``validate``)."""
        outcome = self.run(profile, correlation_id=correlation_id)
        rec, should_publish = self.store(profile, outcome, correlation_id=correlation_id, reason=reason)
        if should_publish:
            self.publish(rec)
        return outcome, rec

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

    def relay_outbox(self, *, limit: int = 500) -> int:
        """Publish outcomes whose first publication failed. Returns how many went out."""
        return sum(1 for rec in self.history.unpublished(limit=limit) if self.publish(rec))


def _legacy_apps_blocked(outcome: ValidationOutcome) -> bool | None:
    """What the test learned about SharePoint's "block apps that don't use modern authentication"."""
    if outcome.message_id == "LEGACY_AUTH_BLOCKED":
        return True
    if outcome.passed and outcome.evidence.sign_in_path == LEGACY:
        return False
    return None
