"""Storage clients (tables and queues) from the one ``AzureWebJobsStorage`` connection.

Locally (Azurite) it is a connection string; in Azure the identity-based form
``AzureWebJobsStorage__accountName`` + ``__clientId`` with the user-assigned managed identity.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from azure.core.exceptions import AzureError, HttpResponseError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from shared.config import Settings
from shared.domain.errors import DependencyUnavailable

TABLE_STORAGE = "Table Storage"
QUEUE_STORAGE = "Queue Storage"

#: Storage calls fail fast so an HTTP caller gets a clear 503 instead of hanging.
_CLIENT_OPTIONS = dict(connection_timeout=5, read_timeout=15, retry_total=2, retry_backoff_factor=0.2)


#: Connections kept open per storage endpoint. requests keeps 10 (urllib3's default), and a process
#: runs more storage calls than that at once (24 queued validations, 16 waited-for ones and the
#: sync pool): past 10, each call opened a connection and discarded it afterwards ("Connection pool
#: is full", Azure/azure-sdk-for-python#12102), a TCP (in Azure, TLS) handshake per call.
POOL_MAXSIZE = 64


def _transport():
    """A transport over a session with a pool of :data:`POOL_MAXSIZE` connections that ignores the
    machine's proxy/netrc variables (requests otherwise reads ``~/.netrc`` on every call, which was a
    sixth of the queue worker's CPU time). Retries stay with the SDK's policy, as in azure-core's
    own session."""
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    from shared.adapters.lean_session import LeanSession

    session = LeanSession()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_MAXSIZE,
                          max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return RequestsTransport(session=session, session_owner=True, use_env_settings=False)


def _managed_identity(settings: Settings):
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=settings.storage_client_id)


def table_service(settings: Settings) -> TableServiceClient:
    if settings.storage_connection_string:
        return TableServiceClient.from_connection_string(settings.storage_connection_string, transport=_transport(),
                                                      **_CLIENT_OPTIONS)
    endpoint = settings.table_service_uri or f"https://{settings.storage_account_name}.table.core.windows.net"
    return TableServiceClient(endpoint, credential=_managed_identity(settings), transport=_transport(),
                              **_CLIENT_OPTIONS)


def queue_service(settings: Settings) -> QueueServiceClient:
    if settings.storage_connection_string:
        return QueueServiceClient.from_connection_string(settings.storage_connection_string, transport=_transport(),
                                                      **_CLIENT_OPTIONS)
    endpoint = settings.queue_service_uri or f"https://{settings.storage_account_name}.queue.core.windows.net"
    return QueueServiceClient(endpoint, credential=_managed_identity(settings), transport=_transport(),
                              **_CLIENT_OPTIONS)


def queue_client(service: QueueServiceClient, queue_name: str) -> QueueClient:
    """A queue client whose messages are base64 text, as the Functions host reads and writes them."""
    return service.get_queue_client(
        queue_name, message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy())


def unavailable(exc: AzureError, dependency: str) -> DependencyUnavailable:
    """The domain error for a storage call that failed after the client's retries.

    The caller raises it ``from exc`` so the SDK error (status, error code, request id) stays in
    the traceback; storage errors carry no secret (rows and messages hold none).
    """
    retry_after = 5
    response = getattr(exc, "response", None)
    if isinstance(exc, HttpResponseError) and response is not None:
        value = response.headers.get("Retry-After")
        retry_after = max(1, int(value)) if value and value.isdigit() else 5
    return DependencyUnavailable(dependency, retry_after=retry_after)


def is_unavailable(exc: AzureError) -> bool:
    """No answer, a server-side failure, throttling or a refused identity: the dependency is down
    for us. A 4xx the adapter did not expect (a bad request) is a bug and stays an SDK error."""
    if not isinstance(exc, HttpResponseError) or exc.status_code is None:
        return True
    return exc.status_code in (401, 403, 408, 429) or exc.status_code >= 500


@contextmanager
def storage_errors(dependency: str) -> Iterator[None]:
    """Turn what :func:`is_unavailable` calls down into DependencyUnavailable, chained. Handlers
    of specific errors (404, 409, 412) go inside the ``with`` block."""
    try:
        yield
    except AzureError as exc:
        if is_unavailable(exc):
            raise unavailable(exc, dependency) from exc
        raise


def ping_table(table: TableClient) -> None:
    """One single-partition query for at most one row: authenticated, and it fails when the table
    is missing (a point read's 404 would not tell a missing table from a missing row)."""
    try:
        next(iter(table.query_entities("PartitionKey eq 'ping'", results_per_page=1,
                                       select=["PartitionKey"])), None)
    except AzureError as exc:
        raise unavailable(exc, TABLE_STORAGE) from exc


def ping_queue(queue: QueueClient) -> None:
    """Get Queue Properties: authenticated, a few hundred bytes, fails when the queue is missing."""
    try:
        queue.get_queue_properties()
    except AzureError as exc:
        raise unavailable(exc, QUEUE_STORAGE) from exc


class TableAdapter:
    """Base of the adapters over one table: the client, and ``ping()`` (:func:`ping_table`)."""

    def __init__(self, table: TableClient):
        self._table = table

    def ping(self) -> None:
        ping_table(self._table)
