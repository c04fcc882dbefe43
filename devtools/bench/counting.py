"""Storage round trips counted on the SDK clients' own transport (not guessed).

:class:`CountingPolicy` counts every request an azure-core pipeline sends; :class:`CountingTransport`
carries it (a transport, because the child clients that ``get_table_client``/``get_queue_client``
return share their parent's transport but not its per-call policies). :func:`counted_services`
wires the real Table and Queue adapters on such clients (Key Vault and Microsoft 365 are given by
the caller), so a benchmark or a test can say how many storage calls one batch validation costs.
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from azure.core.pipeline.transport import RequestsTransport


class CountingPolicy:
    """Counts requests by ``"<METHOD> <table|queue>[/<what>]"``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def count(self, req: Any) -> None:
        parts = [p for p in urlsplit(req.url).path.split("/") if p]
        what = parts[1] if len(parts) > 1 else ""  # account name first (Azurite's path style)
        name = what.split("(", 1)[0]
        if name == "$batch":
            key = "POST $batch"
        elif len(parts) > 2 and parts[2] == "messages":
            key = f"{req.method} queue {name} messages"
        else:
            key = f"{req.method} {name}" + ("(entity)" if "(" in what else "")
        with self._lock:
            self.counts[key] += 1

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


class CountingTransport(RequestsTransport):
    def __init__(self, policy: CountingPolicy, **kwargs: Any):
        super().__init__(use_env_settings=False, **kwargs)
        self.policy = policy

    def send(self, request: Any, **kwargs: Any):
        self.policy.count(request)
        return super().send(request, **kwargs)


def counted_services(connection_string: str, policy: CountingPolicy, **adapters: Any):
    """The product's services (:func:`shared.bootstrap.bootstrap`) on Azurite through counted
    clients; ``adapters`` overrides the rest (``secrets=``, ``probe=``)."""
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    from shared import names
    from shared.adapters.queue_outcome_publisher import QueueOutcomePublisher
    from shared.adapters.queue_work_queue import QueueWorkQueue
    from shared.adapters.storage import queue_client
    from shared.adapters.table_job_repository import TableJobRepository
    from shared.adapters.table_pool_repository import TablePoolRepository
    from shared.adapters.table_profile_repository import TableProfileRepository
    from shared.adapters.table_validation_history import TableValidationHistory
    from shared.adapters.table_webhook_event_log import TableWebhookEventLog
    from shared.bootstrap import bootstrap
    from shared.config import Settings

    tables = TableServiceClient.from_connection_string(connection_string, transport=CountingTransport(policy))
    queues = QueueServiceClient.from_connection_string(connection_string, transport=CountingTransport(policy))
    for table in names.TABLES:
        tables.create_table_if_not_exists(table)
    for queue in names.QUEUES + tuple(q + "-poison" for q in names.QUEUES):
        try:
            queues.create_queue(queue)
        except Exception:  # noqa: BLE001 - exists
            pass
    t = tables.get_table_client
    settings = Settings.from_env({"AzureWebJobsStorage": connection_string, "M365_CLOUD": "local"})
    return bootstrap(
        settings, profiles=TableProfileRepository(t(names.PROFILES_TABLE)),
        history=TableValidationHistory(t(names.VALIDATIONS_TABLE)),
        publisher=QueueOutcomePublisher(queue_client(queues, names.OUTCOMES_QUEUE)),
        jobs=TableJobRepository(t(names.JOBS_TABLE)),
        work=QueueWorkQueue(queue_client(queues, names.VALIDATION_REQUESTS_QUEUE),
                            queue_client(queues, names.VALIDATION_REQUESTS_QUEUE + "-poison")),
        pool=TablePoolRepository(t(names.POOL_TABLE)),
        webhook_events=TableWebhookEventLog(t(names.WEBHOOK_EVENTS_TABLE)), provision=False, **adapters), queues


def batch_round_trips(connection_string: str, profiles: int = 20) -> tuple[Any, Any, Counter[str]]:
    """Storage calls of ``profiles`` batch validations, worker side: a job over new profiles, its
    fan-out expanded, then each profile of its work groups given to ``JobServices.process`` (fakes for Key
    Vault and Microsoft 365, which are not storage). Returns (services, the job's summary, counts)."""
    import uuid

    from shared import names
    from shared.adapters.storage import queue_client
    from shared.domain.jobs import Selection
    from shared.domain.profile import profile_input
    from tests.fakes import FakeSecretStore
    from tests.fakes_validation import FakeAccountProbe

    policy = CountingPolicy()
    services, queues = counted_services(connection_string, policy, secrets=FakeSecretStore(),
                                        probe=FakeAccountProbe())
    tenant = str(uuid.uuid4())
    ids = [services.profiles.create_profile(tenant, profile_input({
        "name": f"p{i}", "username": f"u{i}@contoso.onmicrosoft.com", "password": "Pw-1!"}),
        correlation_id="c").profile.id for i in range(profiles)]
    inbox = queue_client(queues, names.VALIDATION_REQUESTS_QUEUE)
    inbox.clear_messages()
    summary = services.jobs.create_job(tenant, Selection(profile_ids=tuple(ids)), correlation_id="c")
    for m in list(inbox.receive_messages(max_messages=32)):
        services.jobs.process(m.content, dequeue_count=m.dequeue_count)
        inbox.delete_message(m)
    groups: list = []
    while sum(len(services.jobs.members(g.content)) for g in groups) < profiles:
        groups += list(inbox.receive_messages(max_messages=32))
    policy.reset()
    for g in groups:  # one at a time: the group commit of concurrent final writes is not counted
        for member in services.jobs.members(g.content):
            services.jobs.process(member, dequeue_count=g.dequeue_count)
    counts = policy.snapshot()
    for g in groups:
        inbox.delete_message(g)
    return services, summary, counts
