"""Ports: what the services need from storage and Key Vault. Adapters in ``shared/adapters``.

Validation's own port (``AccountProbe``) lives in :mod:`shared.domain.probes`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from shared.domain.profile import LastValidation, Password, SecretRef, ServiceAccountProfile


@dataclass(frozen=True)
class Page:
    items: list[ServiceAccountProfile]
    continuation_token: str | None


class ProfileRepository(abc.ABC):
    """Profiles of one storage account; every call is scoped by tenant."""

    @abc.abstractmethod
    def add(self, profile: ServiceAccountProfile) -> ServiceAccountProfile:
        """Insert; raises NameConflict when the name is taken. Returns it with its ETag."""

    @abc.abstractmethod
    def get(self, tenant_id: str, profile_id: str) -> ServiceAccountProfile:
        """Raises ProfileNotFound."""

    @abc.abstractmethod
    def update(self, profile: ServiceAccountProfile, *, previous_name: str,
               etag: str) -> ServiceAccountProfile:
        """Replace if ``etag`` is current (PreconditionFailed otherwise); keeps the name index."""

    @abc.abstractmethod
    def delete(self, tenant_id: str, profile_id: str, *, etag: str) -> None:
        """Delete if ``etag`` is current."""

    @abc.abstractmethod
    def list(self, tenant_id: str, *, kind: str | None = None, last_status: str | None = None,
             page_size: int = 50, continuation_token: str | None = None) -> Page: ...

    @abc.abstractmethod
    def record_validation(self, profile: ServiceAccountProfile, last: LastValidation, *,
                          legacy_apps_blocked: bool | None = None) -> None:
        """Store the latest validation on the row without touching the user-edited fields."""

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


class SecretStore(abc.ABC):
    """Key Vault, as the profiles see it. Raises DependencyUnavailable when it does not answer."""

    @abc.abstractmethod
    def set_secret(self, name: str, value: Password, *, tags: dict[str, str] | None = None) -> SecretRef: ...

    @abc.abstractmethod
    def get_secret(self, ref: SecretRef) -> Password: ...

    @abc.abstractmethod
    def disable_version(self, ref: SecretRef) -> None:
        """Make a version unusable (an orphan from a failed write)."""

    @abc.abstractmethod
    def delete_secret(self, name: str) -> None:
        """Soft delete (recoverable for the vault's retention period)."""

    @abc.abstractmethod
    def recover_secret(self, name: str) -> None: ...

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


class ValidationHistory(abc.ABC):
    """Validation records per profile, newest first, and the outbox of unpublished outcomes."""

    @abc.abstractmethod
    def add(self, record: ValidationRecord, *, publish: bool) -> None:
        """Store the record; with ``publish`` also an outbox entry until :meth:`mark_published`."""

    @abc.abstractmethod
    def list(self, tenant_id: str, profile_id: str, *, limit: int = 50) -> list[ValidationRecord]: ...

    @abc.abstractmethod
    def mark_published(self, record: ValidationRecord) -> None: ...

    @abc.abstractmethod
    def unpublished(self, *, limit: int = 100) -> list[ValidationRecord]: ...


class OutcomePublisher(abc.ABC):
    """Publishes a validation outcome as one CloudEvent (idempotent per record id for consumers)."""

    @abc.abstractmethod
    def publish(self, record: ValidationRecord) -> None:
        """Raises DependencyUnavailable when the queue does not take it."""
