"""Ports: what the services need from storage, queues and Key Vault. Adapters in ``shared/adapters``.

Every port raises domain errors (:mod:`shared.domain.errors`), never an SDK type, so a fake and its
adapter are interchangeable (``tests/integration/test_port_contracts.py`` runs the same cases
against both). Every port has :meth:`ping`, the cheap authenticated round trip ``/api/health`` uses.
Validation's own port (``AccountProbe``) lives in :mod:`shared.domain.probes`.
"""
from __future__ import annotations

import abc
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Iterator, Sequence

from shared.domain.jobs import JobTally, Job, JobItem, WorkMessage
from shared.domain.pool import PoolMember
from shared.domain.certificates import CertificateInfo
from shared.domain.diagnosis import ExplainMessage, PolicyFacts, SignInEntry
from shared.domain.errors import NameConflict
from shared.domain.probes import Grant
from shared.domain.profile import LastValidation, Password, SecretRef, ServiceAccountProfile


class Pingable(abc.ABC):
    """A dependency that can say whether it answers."""

    @abc.abstractmethod
    def ping(self) -> None:
        """One cheap authenticated round trip; raises DependencyUnavailable when it does not answer.

        Cheap, because ``/api/health`` calls it on every probe; authenticated, because a reachable
        endpoint that refuses our identity is down for us.
        """


@dataclass(frozen=True)
class Page:
    items: list[ServiceAccountProfile]
    continuation_token: str | None


class ProfileRepository(Pingable):
    """Profiles of one storage account; every call is scoped by tenant.

    Raises DependencyUnavailable when the store does not answer.
    """

    @abc.abstractmethod
    def add(self, profile: ServiceAccountProfile) -> ServiceAccountProfile:
        """Insert; raises NameConflict when the name is taken. Returns it with its ETag."""

    @contextmanager
    def reserving(self, tenant_id: str, name: str, profile_id: str) -> Iterator[None]:
        """Hold ``name`` for the profile ``profile_id`` while the block prepares it (its secret or
        certificate) and :meth:`add`s it; raises NameConflict at once when the name is taken, so
        nothing is prepared for a profile that cannot be saved. If the block fails before the
        profile is added, the name is free again.

        This default only checks; a store that can hold a name (a row of its own) overrides it.
        """
        if self.name_exists(tenant_id, name):
            raise NameConflict(name)
        yield

    @abc.abstractmethod
    def get(self, tenant_id: str, profile_id: str) -> ServiceAccountProfile:
        """Raises ProfileNotFound."""

    @abc.abstractmethod
    def update(self, profile: ServiceAccountProfile, *, previous_name: str,
               etag: str) -> ServiceAccountProfile:
        """Replace if ``etag`` is current (PreconditionFailed otherwise); keeps the name index."""

    @abc.abstractmethod
    def delete(self, tenant_id: str, profile_id: str, *, etag: str) -> None:
        """Delete if ``etag`` is current (PreconditionFailed otherwise); ProfileNotFound when absent."""

    @abc.abstractmethod
    def list(self, tenant_id: str, *, kind: str | None = None, last_status: str | None = None,
             page_size: int = 50, continuation_token: str | None = None) -> Page:
        """At most ``page_size`` profiles in id order, and the token of the next page (None: last).

        InvalidInput (field ``continuationToken``) for a token this store did not issue.
        """

    @abc.abstractmethod
    def record_validation(self, profile: ServiceAccountProfile, last: LastValidation, *,
                          legacy_apps_blocked: bool | None = None, sharepoint_url: str | None = None,
                          certificate_alert: int | None = None) -> None:
        """Store the latest validation on the row without touching the user-edited fields, with
        what the test learned (None: unchanged): SharePoint's legacy-apps setting, an app
        profile's SharePoint URL, the certificate alert threshold last published.

        Unconditional (no ETag: a validation never conflicts with an edit); ProfileNotFound when absent.
        """

    @abc.abstractmethod
    def name_exists(self, tenant_id: str, name: str, *, exclude_profile_id: str | None = None) -> bool: ...

    @abc.abstractmethod
    def list_every_tenant(self) -> Iterable[ServiceAccountProfile]:
        """Every profile of every tenant (scheduled revalidation)."""

    def list_all(self, tenant_id: str, **filters) -> Iterable[ServiceAccountProfile]:
        token = None
        while True:
            page = self.list(tenant_id, continuation_token=token, page_size=500, **filters)
            yield from page.items
            token = page.continuation_token
            if not token:
                return


class SecretStore(Pingable):
    """Key Vault, as the profiles see it. Raises DependencyUnavailable when it does not answer.

    No exception text or log line carries a secret value.
    """

    @abc.abstractmethod
    def set_secret(self, name: str, value: Password, *, tags: dict[str, str] | None = None) -> SecretRef:
        """Store a new version; returns its reference. A soft-deleted name is DependencyUnavailable
        (the vault refuses it until it is recovered or purged)."""

    @abc.abstractmethod
    def get_secret(self, ref: SecretRef) -> Password:
        """SecretMissing when the name or the version does not exist (deleted, purged)."""

    @abc.abstractmethod
    def disable_version(self, ref: SecretRef) -> None:
        """Make a version unusable (an orphan from a failed write); :meth:`get_secret` then raises
        SecretMissing for it. A missing version is a no-op."""

    @abc.abstractmethod
    def delete_secret(self, name: str) -> None:
        """Soft delete (recoverable for the vault's retention period); a missing name is a no-op."""

    @abc.abstractmethod
    def recover_secret(self, name: str) -> None:
        """Undo :meth:`delete_secret`; a name that is not deleted is a no-op."""

    @abc.abstractmethod
    def get_values(self, name: str, *, limit: int = 3) -> list[str]:
        """Values of the newest enabled versions of a non-profile secret (webhook keys), newest
        first; empty when absent. Several, so a key can be rotated without a gap."""


@dataclass(frozen=True)
class ValidationRecord:
    """One stored Validation Test of a saved profile (its history entry). Never holds a secret."""

    tenant_id: str
    profile_id: str
    record_id: str
    at: datetime
    status: str
    message_id: str | None
    outcome: dict
    reason: str
    correlation_id: str
    job_id: str | None = None
    #: W3C trace context of the span that stored it (None for records stored before tracing): the
    #: outcome events carry it, also when the outbox relay publishes them later.
    traceparent: str | None = None
    tracestate: str | None = None


class ValidationHistory(Pingable):
    """Validation records per profile, newest first, and the outbox of unpublished outcomes.

    Raises DependencyUnavailable when the store does not answer.
    """

    @abc.abstractmethod
    def add(self, record: ValidationRecord, *, publish: bool) -> None:
        """Store the record; with ``publish`` also an outbox entry until :meth:`mark_published`.

        Atomic: after a failure either both are stored or neither, so an outcome is never stored
        without its outbox entry. Idempotent per (profile, ``at``, record id): a retry replaces.
        """

    @abc.abstractmethod
    def list(self, tenant_id: str, profile_id: str, *, limit: int = 50) -> list[ValidationRecord]:
        """The profile's newest ``limit`` records, newest first; empty when there are none."""

    @abc.abstractmethod
    def mark_published(self, record: ValidationRecord) -> None:
        """Clear the record's outbox entry; idempotent (no entry is a no-op)."""

    @abc.abstractmethod
    def unpublished(self, *, limit: int = 100) -> list[ValidationRecord]:
        """At most ``limit`` records that still have an outbox entry (the relay's work)."""


class OutcomePublisher(Pingable):
    """Publishes a validation outcome as one CloudEvent (idempotent per record id for consumers)."""

    @abc.abstractmethod
    def publish(self, record: ValidationRecord) -> None:
        """Raises DependencyUnavailable when the queue does not take it. Publishing a record twice
        sends two events with the same id (the record id), which consumers drop as a duplicate."""

    @abc.abstractmethod
    def publish_explained(self, record: ValidationRecord) -> None:
        """The ``outcome.explained`` event of a record whose outcome now has its explanation (its id
        is the record id + ``:explained``, so a re-publication is a duplicate to consumers)."""


class JobRepository(Pingable):
    """Validation jobs and their per-profile items. Raises DependencyUnavailable when the store
    does not answer.

    An item is created once (its claim, or its final state when a first delivery needs no claim)
    and then replaced under its ETag, so two copies of one work message cannot both claim, or both
    finish, the same profile.
    """

    @abc.abstractmethod
    def add(self, job: Job) -> None:
        """Insert the job row; PreconditionFailed when a job with this id exists in the tenant."""

    @abc.abstractmethod
    def get(self, tenant_id: str, job_id: str) -> Job:
        """NotFound when the tenant has no such job."""

    @abc.abstractmethod
    def mark_started(self, tenant_id: str, job_id: str, at: datetime) -> None:
        """Set ``started_at`` once: the first writer wins, later calls (and a missing job) are no-ops."""

    @abc.abstractmethod
    def create_item(self, item: JobItem, *, claimed_until: datetime | None = None) -> str:
        """Insert an item (a claim); returns its ETag. PreconditionFailed when the item exists."""

    @abc.abstractmethod
    def write_items(self, job_id: str, writes: Sequence[tuple[JobItem, str | None]], tally: JobTally) -> list[str]:
        """Write items of one job and the writer's tally atomically (all or none): each
        ``(item, etag)`` is an insert when ``etag`` is None, else a replace under ``etag`` (``"*"``:
        any). Returns the new ETags in order. PreconditionFailed when any insert finds its item, or
        any ETag is stale or its item missing: then nothing is written.
        """

    @abc.abstractmethod
    def get_item(self, job_id: str, profile_id: str) -> tuple[JobItem, datetime | None, str]:
        """(item, claimed until, ETag); NotFound when the item was never created."""

    @abc.abstractmethod
    def save_item(self, item: JobItem, *, etag: str, claimed_until: datetime | None = None) -> str:
        """Replace the item if ``etag`` is current (``"*"``: any); returns the new ETag.

        PreconditionFailed when the ETag is stale or the item does not exist.
        """

    @abc.abstractmethod
    def tallies(self, job_id: str) -> list[JobTally]:
        """The job's tallies (one per writer that finished an item): a constant number of rows
        whatever the job's size."""

    @abc.abstractmethod
    def items(self, job_id: str) -> list[JobItem]:
        """Every created item of the job in profile id order, without ``detail`` (the summary does
        not need it, and a 10,000-item job would read it 10,000 times)."""


class PoolRepository(Pingable):
    """Account-pool members per tenant. Raises DependencyUnavailable when the store does not answer.

    A lease or a release is :meth:`replace_member` under the member's ETag, so two concurrent
    requests can never both take the same member.
    """

    @abc.abstractmethod
    def members(self, tenant_id: str) -> list[PoolMember]:
        """Every member of the tenant's pool, with its ETag, in profile id order."""

    @abc.abstractmethod
    def add_member(self, tenant_id: str, profile_id: str) -> None:
        """Add a member that is free; idempotent (an existing member keeps its lease and rest)."""

    @abc.abstractmethod
    def remove_member(self, tenant_id: str, profile_id: str) -> None:
        """Remove a member; idempotent (an absent member is a no-op)."""

    @abc.abstractmethod
    def replace_member(self, tenant_id: str, member: PoolMember) -> PoolMember:
        """Replace if ``member.etag`` is current; returns it with its new ETag.

        PreconditionFailed when another request changed (or removed) the member first.
        """


class WorkQueue(Pingable):
    """The ``validation-requests`` work queue and its poison queue.

    Raises DependencyUnavailable when the queue does not take a message.
    """

    @abc.abstractmethod
    def send(self, message: WorkMessage, *, delay_seconds: int = 0) -> None:
        """Send one message, invisible for ``delay_seconds`` (negative counts as 0)."""

    @abc.abstractmethod
    def send_many(self, messages: Iterable[tuple[WorkMessage, int]]) -> int:
        """Send (message, delay seconds) pairs; returns how many were sent. Not atomic: after a
        failure some may have gone out (the worker tolerates duplicates)."""

    @abc.abstractmethod
    def send_to_poison(self, text: str) -> None:
        """Park a message that can never be processed, as the host does after maxDequeueCount."""

    @abc.abstractmethod
    def backlog(self) -> int:
        """About how many messages wait in the work queue (visible or not): one round trip."""


class WebhookEventLog(Pingable):
    """Event ids already processed, per portal (the de-duplication memory).

    Raises DependencyUnavailable when the store does not answer.
    """

    @abc.abstractmethod
    def try_record(self, portal_id: str, event_id: str, *, event_type: str) -> bool:
        """Record the id; False when it was recorded before (atomic: of two concurrent calls with
        one id, exactly one gets True)."""

    @abc.abstractmethod
    def forget(self, portal_id: str, event_id: str) -> None:
        """Undo :meth:`try_record` when processing failed, so the portal's retry is not a no-op;
        idempotent (an unknown id is a no-op)."""


class CertificateStore(Pingable):
    """App profiles' certificates in Key Vault. The private key never leaves it: the store creates
    (non-exportable) or imports a certificate and signs digests with its key. Raises
    DependencyUnavailable when the vault does not answer, NotFound for an unknown certificate."""

    @abc.abstractmethod
    def create_certificate(self, name: str, *, subject: str, validity_months: int) -> CertificateInfo:
        """A new version of ``name`` whose key is generated in the vault and cannot be exported."""

    @abc.abstractmethod
    def import_certificate(self, name: str, pfx: bytes, password: Password | None) -> CertificateInfo:
        """A new version of ``name`` from a PFX; InvalidInput when the PFX cannot be read."""

    @abc.abstractmethod
    def get_certificate(self, name: str, version: str | None = None) -> CertificateInfo: ...

    @abc.abstractmethod
    def sign_digest(self, key_id: str, digest: bytes) -> bytes:
        """RS256 signature of a SHA-256 ``digest`` by the vault (one sign operation)."""

    @abc.abstractmethod
    def delete_certificate(self, name: str) -> None:
        """Soft-delete ``name`` with its key (recoverable within the vault's retention); an unknown
        name is a no-op."""


class ExplanationQueue(Pingable):
    """The follow-ups that name a blocking policy once the sign-in log has the entry."""

    @abc.abstractmethod
    def send(self, message: ExplainMessage, *, delay_seconds: int) -> None:
        """Visible after ``delay_seconds``; DependencyUnavailable when the queue does not take it."""


class SignInDiagnostics(abc.ABC):
    """The tenant's sign-in log and Conditional Access policies (Microsoft Graph), read with a
    diagnosis app profile's token. Raises :class:`~shared.domain.errors.DiagnosisRefused` when Graph
    refuses (a permission or the Entra ID P1 licence missing) and DependencyUnavailable when it does
    not answer."""

    @abc.abstractmethod
    def find_sign_in(self, grant: Grant, *, correlation_id: str | None, user: str | None, app_id: str | None,
                     since: datetime) -> SignInEntry | None:
        """The sign-in of that request (by correlation id; else the newest failed one of ``user`` or
        ``app_id`` since ``since``), or None while the log does not have it yet."""

    @abc.abstractmethod
    def policies(self, grant: Grant, ids: Iterable[str]) -> dict[str, PolicyFacts]:
        """The facts of each policy (unknown ids are left out)."""

    @abc.abstractmethod
    def security_defaults(self, grant: Grant) -> bool:
        """Whether the tenant's security defaults are on."""
