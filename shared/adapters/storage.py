"""Storage clients (tables and queues) from the one ``AzureWebJobsStorage`` connection.

Locally (Azurite) it is a connection string; in Azure the identity-based form
``AzureWebJobsStorage__accountName`` + ``__clientId`` with the user-assigned managed identity.
"""
from __future__ import annotations

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from shared.config import Settings

#: Storage calls fail fast so an HTTP caller gets a clear 503 instead of hanging.
_CLIENT_OPTIONS = dict(connection_timeout=5, read_timeout=15, retry_total=2, retry_backoff_factor=0.2)


def _transport():
    """A transport that ignores the machine's proxy/netrc variables: requests otherwise reads
    ``~/.netrc`` on every call, which was a sixth of the queue worker's CPU time."""
    from azure.core.pipeline.transport import RequestsTransport

    return RequestsTransport(use_env_settings=False)


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
