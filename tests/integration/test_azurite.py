from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient


def test_azurite_serves_tables_and_queues(storage_connection_string):
    tables = TableServiceClient.from_connection_string(storage_connection_string)
    table = tables.create_table_if_not_exists("SmokeTest")
    table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "v": 1})
    assert table.get_entity("p", "r")["v"] == 1

    queue = QueueClient.from_connection_string(storage_connection_string, "smoke-test")
    queue.create_queue()
    queue.send_message("hello")
    assert [m.content for m in queue.receive_messages()] == ["hello"]
