"""Composition root (cosmicpython's ``bootstrap``): builds adapters and services once per process.

Every adapter is a keyword with a default built from :class:`Settings`, so a test overrides exactly
what it fakes (``bootstrap(settings, probe=FakeAccountProbe())``). No use-case logic lives here.
Triggers call :func:`services`.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from shared import names
from shared.cloud import endpoints_for
from shared.config import Settings
from shared.domain.ports import (CertificateStore, ExplanationQueue, JobRepository, SignInDiagnostics, OutcomePublisher, PoolRepository,
                                 ProfileRepository, SecretStore, ValidationHistory, WebhookEventLog, WorkQueue)
from shared.domain.probes import AccountProbe
from shared.services.health import HealthService
from shared.services.jobs import JobServices
from shared.services.network import NetworkService
from shared.services.pool import PoolServices
from shared.services.profiles import ProfileServices, utcnow
from shared.services.explanations import ExplanationService
from shared.services.validation import ValidationService
from shared.services.webhooks import WebhookReceiver, profile_handlers

log = logging.getLogger(__name__)

#: azure-core's HttpLoggingPolicy logs every SDK request and response, headers formatted, at INFO
#: (Azure/azure-sdk-for-python#17961: in a Function App that is two records per storage call). The
#: Functions host keeps Information from the app, so they would cost CPU and Application Insights
#: ingestion on every call; warnings (a request that failed for good) still get through.
SDK_HTTP_LOGGER = "azure.core.pipeline.policies.http_logging_policy"


@dataclass(frozen=True)
class Services:
    """One service per group of use cases; a trigger calls exactly one of their methods."""

    profiles: ProfileServices
    validation: ValidationService
    jobs: JobServices
    pool: PoolServices
    webhooks: WebhookReceiver
    health: HealthService
    network: NetworkService
    explanations: ExplanationService


class _Storage:
    """The storage service clients, built on first use (building them does no I/O)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._tables = self._queues = None
        self.used = False

    @property
    def tables(self):
        if self._tables is None:
            from shared.adapters.storage import table_service

            self._tables = table_service(self.settings)
        return self._tables

    @property
    def queues(self):
        if self._queues is None:
            from shared.adapters.storage import queue_service

            self._queues = queue_service(self.settings)
        return self._queues

    def table(self, name: str):
        self.used = True
        return self.tables.get_table_client(name)

    def queue(self, name: str):
        from shared.adapters.storage import queue_client

        self.used = True
        return queue_client(self.queues, name)

    def provision(self) -> bool:
        """Create the tables and queues if missing. False (logged) when storage does not answer:
        the first request that needs storage then answers 503, and the next start tries again."""
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            for table in names.TABLES:
                self.tables.create_table_if_not_exists(table)
            for queue in names.QUEUES + tuple(q + "-poison" for q in names.QUEUES):
                try:
                    self.queues.create_queue(queue)
                except ResourceExistsError:
                    pass
        except AzureError as exc:
            log.warning("storage is not reachable; tables and queues not checked (%s)", type(exc).__name__)
            return False
        return True


class _OnFirstUse:
    """An adapter built when first used (its construction may check settings a process without
    app profiles does not need)."""

    def __init__(self, build: Callable[[], object]):
        self._build, self._built, self._lock = build, None, threading.Lock()

    def __getattr__(self, name: str):
        built = self._built
        if built is None:
            with self._lock:
                if self._built is None:
                    self._built = self._build()
                built = self._built
        return getattr(built, name)


def key_vault_client(settings: Settings, session=None):
    """The ``SecretClient`` of the configured vault (the app's identity, the cloud's session)."""
    from azure.keyvault.secrets import SecretClient

    from shared.adapters.http_session import build_credential, build_session, build_transport
    from shared.adapters.keyvault_secret_store import CLIENT_OPTIONS

    session = session or build_session(settings)
    return SecretClient(settings.key_vault_uri, build_credential(settings, session),
                        transport=build_transport(settings, session), **CLIENT_OPTIONS)


def certificate_store(settings: Settings, session=None):
    """The app profiles' :class:`~shared.adapters.keyvault_certificate_store.KeyVaultCertificateStore`:
    a ``CertificateClient`` and, per key, a ``CryptographyClient`` (sign only), on one credential
    and the cloud's session."""
    from azure.keyvault.certificates import CertificateClient
    from azure.keyvault.keys.crypto import CryptographyClient

    from shared.adapters.http_session import build_credential, build_session, build_transport
    from shared.adapters.keyvault_certificate_store import KeyVaultCertificateStore
    from shared.adapters.keyvault_secret_store import CLIENT_OPTIONS

    session = session or build_session(settings)
    credential = build_credential(settings, session)
    return KeyVaultCertificateStore(
        CertificateClient(settings.key_vault_uri, credential, transport=build_transport(settings, session),
                          **CLIENT_OPTIONS),
        lambda key_id: CryptographyClient(key_id, credential, transport=build_transport(settings, session),
                                          **CLIENT_OPTIONS))


def bootstrap(settings: Settings, *, profiles: ProfileRepository | None = None, secrets: SecretStore | None = None,
              history: ValidationHistory | None = None, publisher: OutcomePublisher | None = None,
              probe: AccountProbe | None = None, jobs: JobRepository | None = None, work: WorkQueue | None = None,
              pool: PoolRepository | None = None, webhook_events: WebhookEventLog | None = None,
              certificates: CertificateStore | None = None, explanation_queue: ExplanationQueue | None = None,
              diagnostics: SignInDiagnostics | None = None,
              clock: Callable[[], datetime] = utcnow, provision: bool = True) -> Services:
    """Wire the services. Adapters not given are built from ``settings`` (Azure SDK clients on the
    one storage connection, Key Vault through the cloud's session, msal through the same session)."""
    logging.getLogger(SDK_HTTP_LOGGER).setLevel(logging.WARNING)
    storage = _Storage(settings)
    session = None

    def http_session():
        nonlocal session
        if session is None:
            from shared.adapters.http_session import build_session

            session = build_session(settings)
        return session

    if profiles is None:
        from shared.adapters.table_profile_repository import TableProfileRepository

        profiles = TableProfileRepository(storage.table(names.PROFILES_TABLE))
    if secrets is None:
        from shared.adapters.keyvault_secret_store import KeyVaultSecretStore

        secrets = KeyVaultSecretStore(key_vault_client(settings, http_session()))
    if history is None:
        from shared.adapters.table_validation_history import TableValidationHistory

        history = TableValidationHistory(storage.table(names.VALIDATIONS_TABLE))
    if publisher is None:
        from shared.adapters.queue_outcome_publisher import QueueOutcomePublisher

        publisher = QueueOutcomePublisher(storage.queue(names.OUTCOMES_QUEUE))
    if probe is None:
        from shared.adapters.m365_probe import M365AccountProbe

        probe = M365AccountProbe(settings, http_session())
    if jobs is None:
        from shared.adapters.table_job_repository import TableJobRepository

        jobs = TableJobRepository(storage.table(names.JOBS_TABLE))
    if work is None:
        from shared.adapters.queue_work_queue import QueueWorkQueue

        work = QueueWorkQueue(storage.queue(names.VALIDATION_REQUESTS_QUEUE),
                              storage.queue(names.VALIDATION_REQUESTS_QUEUE + "-poison"))
    if pool is None:
        from shared.adapters.table_pool_repository import TablePoolRepository

        pool = TablePoolRepository(storage.table(names.POOL_TABLE))
    if webhook_events is None:
        from shared.adapters.table_webhook_event_log import TableWebhookEventLog

        webhook_events = TableWebhookEventLog(storage.table(names.WEBHOOK_EVENTS_TABLE))
    if certificates is None:
        # Built on first use: only app profiles need it, and building it checks the app identity.
        certificates = _OnFirstUse(lambda: certificate_store(settings, http_session()))
    if explanation_queue is None:
        from shared.adapters.queue_explanation_queue import QueueExplanationQueue

        explanation_queue = QueueExplanationQueue(storage.queue(names.EXPLANATIONS_QUEUE))
    if diagnostics is None:
        from shared.adapters.graph_sign_in_log import GraphSignInDiagnostics
        from shared.adapters.upstream_http import UpstreamHttp

        diagnostics = GraphSignInDiagnostics(UpstreamHttp(http_session(), timeout=settings.upstream_timeout),
                                             graph_url=endpoints_for(settings.cloud).graph_url)
    if provision and storage.used:
        storage.provision()

    profile_services = ProfileServices(profiles, secrets, endpoints_for(settings.cloud), clock,
                                       certificates=certificates,
                                       certificate_subject=settings.app_certificate_subject,
                                       certificate_validity_months=settings.app_certificate_validity_months)
    validation = ValidationService(profiles, secrets, history, publisher, probe, settings.reserved_ip_ranges,
                                   deadline_seconds=settings.validation_deadline, certificates=certificates,
                                   consent_url=profile_services.consent_url)
    explanations = ExplanationService(
        profiles, history, publisher, probe, diagnostics, explanation_queue, certificates, settings.reserved_ip_ranges,
        clock, first_look_seconds=settings.explanation_first_look_seconds,
        max_wait_seconds=settings.explanation_max_wait_minutes * 60,
        graph_scope=endpoints_for(settings.cloud).graph_scope)
    validation.explanations = explanations
    job_services = JobServices(jobs, profiles, validation, work, clock,
                               revalidation_max_age_hours=settings.revalidation_max_age_hours,
                               revalidation_spread_seconds=settings.revalidation_spread_minutes * 60)
    return Services(
        profiles=profile_services,
        validation=validation,
        jobs=job_services,
        pool=PoolServices(pool, profiles, settings.key_vault_uri, settings.pool_lease_seconds, clock),
        webhooks=WebhookReceiver(get_keys=secrets.get_values, events=webhook_events,
                                 handlers=profile_handlers(profile_services, job_services),
                                 replay_window_seconds=settings.webhook_replay_window_seconds,
                                 portals=settings.webhook_portals),
        health=HealthService({"table": profiles, "queue": work, "keyVault": secrets}),
        network=NetworkService(settings.reserved_ip_ranges),
        explanations=explanations,
    )


_lock = threading.Lock()
_services: Services | None = None


def services() -> Services:
    """The process-wide services (settings read once from the environment)."""
    global _services
    if _services is not None:  # every invocation asks: no lock once built
        return _services
    with _lock:
        if _services is None:
            _services = bootstrap(Settings.from_env())
        return _services
