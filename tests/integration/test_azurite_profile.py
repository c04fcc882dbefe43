"""The Azurite profiler of ``devtools.bench.azurite_profile``: its arithmetic on a CDP profile, and
a real profile of a real Azurite taken through Node's inspector."""
from azure.data.tables import TableServiceClient

from devtools import azurite
from devtools.bench.azurite_profile import Inspector, inclusive_ms


def _node(node_id, name, url="x.js", children=()):
    return {"id": node_id, "callFrame": {"functionName": name, "url": f"/dist/{url}"}, "children": list(children)}


def test_inclusive_time_counts_callees_once_per_function_and_leaves_idle_out():
    profile = {
        "nodes": [_node(1, "(root)", "", (2, 5)), _node(2, "outer", "a.js", (3,)), _node(3, "recurse", "b.js", (4,)),
                  _node(4, "recurse", "b.js"), _node(5, "(idle)", "")],
        # the time a sample stands for is the delta before the next one (microseconds)
        "samples": [4, 4, 2, 5, 4],
        "timeDeltas": [0, 1000, 2000, 3000, 4000],
    }
    functions, busy = inclusive_ms(profile)
    assert busy == 1 + 2 + 0 + 3  # the idle sample (3 ms) is not busy time
    assert functions["recurse b.js"] == 1 + 2 + 0  # on its stack twice, counted once
    assert functions["outer a.js"] == 1 + 2 + 3 + 0
    assert "(idle) " not in functions


def test_a_profile_of_a_running_azurite_names_its_table_functions(tmp_path):
    port = azurite.free_port()
    store = azurite.start(inspect_port=port)
    try:
        inspector = Inspector(port)
        try:
            inspector.call("Profiler.enable")
            inspector.call("Profiler.setSamplingInterval", interval=100)
            table = TableServiceClient.from_connection_string(store.connection_string).create_table("Profiled")
            inspector.call("Profiler.start")
            for n in range(200):
                table.upsert_entity({"PartitionKey": "p", "RowKey": str(n), "Value": "x" * 100})
            functions, busy = inclusive_ms(inspector.call("Profiler.stop")["profile"])
        finally:
            inspector.close()
    finally:
        store.stop()
    assert busy > 0
    store_functions = {name: ms for name, ms in functions.items() if name.endswith(" LokiTableMetadataStore.js")}
    assert sum(store_functions.values()) > 0, sorted(functions)
