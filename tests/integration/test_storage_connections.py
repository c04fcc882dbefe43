"""The app's storage clients keep a connection per call in flight: a process runs more storage
calls at once than requests' default pool of 10, which then opened and discarded a connection per
call (a TLS handshake each in Azure)."""
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

from shared.adapters.storage import POOL_MAXSIZE, queue_client, queue_service, table_service
from shared.config import Settings


def test_concurrent_storage_calls_reuse_their_connections(storage_connection_string, caplog):
    settings = Settings.from_env({"AzureWebJobsStorage": storage_connection_string, "M365_CLOUD": "local"})
    table = table_service(settings).create_table_if_not_exists(f"Pool{uuid.uuid4().hex[:8]}")
    table.upsert_entity({"PartitionKey": "p", "RowKey": "r"})
    queue = queue_client(queue_service(settings), f"pool-{uuid.uuid4().hex[:8]}")
    queue.create_queue()
    in_flight = 40  # the queue worker's 24 plus the waited-for validations' 16
    assert POOL_MAXSIZE >= in_flight
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        with ThreadPoolExecutor(in_flight) as pool:
            for _ in range(3):
                list(pool.map(lambda _: table.get_entity("p", "r"), range(in_flight)))
                list(pool.map(lambda _: queue.send_message("m"), range(in_flight)))
    assert [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()] == []
