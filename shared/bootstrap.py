"""Composition root: builds adapters and services once per process from :class:`Settings`.

Triggers call :func:`deps`; tests may build their own :class:`Deps` with fakes or other settings.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

from shared import names
from shared.cloud import CloudEndpoints, endpoints_for
from shared.config import Settings


@dataclass
class Deps:
    settings: Settings

    @cached_property
    def endpoints(self) -> CloudEndpoints:
        return endpoints_for(self.settings.cloud)

    @cached_property
    def http_session(self):
        from shared.adapters.http_session import build_session

        return build_session(self.settings)

    @cached_property
    def credential(self):
        from shared.adapters.http_session import build_credential

        return build_credential(self.settings)

    @cached_property
    def table_service(self):
        from shared.adapters.storage import table_service

        service = table_service(self.settings)
        for table in names.TABLES:
            service.create_table_if_not_exists(table)
        return service

    def table(self, name: str):
        return self.table_service.get_table_client(name)

    @cached_property
    def queue_service(self):
        """One queue service client (one connection pool) per process; creates the queues once."""
        from azure.core.exceptions import ResourceExistsError

        from shared.adapters.storage import queue_service

        service = queue_service(self.settings)
        for queue in names.QUEUES + tuple(q + "-poison" for q in names.QUEUES):
            try:
                service.create_queue(queue)
            except ResourceExistsError:
                pass
        return service

    def queue(self, name: str):
        from shared.adapters.storage import queue_client

        return queue_client(self.queue_service, name)

    @cached_property
    def secret_client(self):
        from azure.keyvault.secrets import SecretClient

        from shared.adapters.http_session import build_transport
        from shared.adapters.keyvault_secret_store import CLIENT_OPTIONS

        return SecretClient(self.settings.key_vault_uri, self.credential,
                            transport=build_transport(self.settings, self.http_session), **CLIENT_OPTIONS)

    @cached_property
    def secrets(self):
        from shared.adapters.keyvault_secret_store import KeyVaultSecretStore

        return KeyVaultSecretStore(self.secret_client)

    @cached_property
    def profile_repository(self):
        from shared.adapters.table_profile_repository import TableProfileRepository

        return TableProfileRepository(self.table(names.PROFILES_TABLE))

    @cached_property
    def profile_services(self):
        from shared.services.profiles import ProfileServices

        return ProfileServices(self.profile_repository, self.secrets, self.endpoints)

    @cached_property
    def probe(self):
        from shared.adapters.entra_probe import M365AccountProbe

        return M365AccountProbe(self.settings, self.http_session)

    @cached_property
    def validation_runs(self):
        from shared.adapters.queue_outcome_publisher import QueueOutcomePublisher
        from shared.adapters.table_validation_history import TableValidationHistory
        from shared.services.validation_runs import ValidationRuns

        return ValidationRuns(self.profile_repository, self.secrets,
                              TableValidationHistory(self.table(names.VALIDATIONS_TABLE)),
                              QueueOutcomePublisher(self.queue(names.OUTCOMES_QUEUE)), self.probe,
                              self.settings.reserved_ip_ranges)

    @cached_property
    def job_services(self):
        from shared.adapters.queue_work_queue import QueueWorkQueue
        from shared.adapters.table_job_repository import TableJobRepository
        from shared.services.jobs import JobServices
        from shared.services.profiles import utcnow

        return JobServices(TableJobRepository(self.table(names.JOBS_TABLE)), self.profile_repository,
                           self.validation_runs,
                           QueueWorkQueue(self.queue(names.VALIDATION_REQUESTS_QUEUE),
                                          self.queue(names.VALIDATION_REQUESTS_QUEUE + "-poison")),
                           utcnow)

    @cached_property
    def pool_services(self):
        from shared.adapters.table_pool_repository import TablePoolRepository
        from shared.services.pool import PoolServices
        from shared.services.profiles import utcnow

        return PoolServices(TablePoolRepository(self.table(names.POOL_TABLE)), self.profile_repository,
                            self.settings.key_vault_uri, self.settings.pool_lease_seconds, utcnow)

    @cached_property
    def webhook_receiver(self):
        from shared.adapters.table_webhook_event_log import TableWebhookEventLog
        from shared.services.webhooks import WebhookReceiver, profile_handlers

        return WebhookReceiver(
            get_keys=self.secrets.get_values,
            events=TableWebhookEventLog(self.table(names.WEBHOOK_EVENTS_TABLE)),
            handlers=profile_handlers(self.profile_services, self._webhook_validation_request),
            replay_window_seconds=self.settings.webhook_replay_window_seconds)

    def _webhook_validation_request(self, tenant_id: str, data: dict, correlation_id: str) -> dict:
        from shared.domain.jobs import Reason

        body = {k: data[k] for k in ("profileIds", "all", "filter") if k in data}
        job = self.job_services.create_job(tenant_id, body, correlation_id=correlation_id, reason=Reason.WEBHOOK)
        return {"jobId": job.id, "total": job.total, "location": f"/api/tenants/{tenant_id}/validation-jobs/{job.id}"}


_lock = threading.Lock()
_deps: Deps | None = None


def deps() -> Deps:
    """The process-wide dependencies (settings read once from the environment)."""
    global _deps
    with _lock:
        if _deps is None:
            _deps = Deps(Settings.from_env())
        return _deps

