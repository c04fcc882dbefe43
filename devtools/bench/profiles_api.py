"""Profiles API latency: p50/p95 of create / get / patch through the local host, next to a raw
Table Storage get measured in the same run (Azurite + the simulator's Key Vault).

    python -m devtools.bench.profiles_api [--n 200]
"""
from __future__ import annotations

import argparse
import time
import uuid

from devtools.bench.stack import percentiles, running_stack

TENANT = "11111111-1111-4111-8111-111111111111"


def measure(stack: dict, *, n: int = 200, out=print) -> dict:
    """p50/p95 (ms) of create, get and patch, and of a raw Table get and update in the same run."""
    from azure.data.tables import TableClient, UpdateMode

    api, url = stack["api"], stack["url"]
    timings: dict[str, list[float]] = {"create": [], "get": [], "patch": [], "table get": [], "table update": []}
    table = TableClient.from_connection_string(stack["azurite"].connection_string, "Profiles")
    for _ in range(10):  # warm-up: connections, Key Vault token, table creation
        api.get(f"{url}/api/tenants/{TENANT}/profiles?pageSize=1")

    def timed(name: str, call):
        t = time.perf_counter()
        result = call()
        timings[name].append((time.perf_counter() - t) * 1000)
        return result

    for i in range(n):
        body = {"name": f"bench {uuid.uuid4().hex}", "username": "admin@contoso.onmicrosoft.com",
                "password": "Demo-Passw0rd!"}
        r = timed("create", lambda: api.post(f"{url}/api/tenants/{TENANT}/profiles", json=body))
        assert r.status_code == 201, r.text
        pid, etag = r.json()["id"], r.headers["ETag"]
        assert timed("get", lambda: api.get(f"{url}/api/tenants/{TENANT}/profiles/{pid}")).status_code == 200
        r = timed("patch", lambda: api.patch(f"{url}/api/tenants/{TENANT}/profiles/{pid}",
                                             json={"description": f"d{i}"}, headers={"If-Match": etag}))
        assert r.status_code == 200, r.text
        entity = timed("table get", lambda: table.get_entity(TENANT, pid))
        timed("table update", lambda: table.update_entity({"PartitionKey": TENANT, "RowKey": pid,
                                                          "Description": f"r{i}"}, mode=UpdateMode.MERGE))
        del entity
    stats = {name: percentiles(samples) for name, samples in timings.items()}
    out(f"profiles API on the local host, n={n} each (ms)")
    for name, p in stats.items():
        out(f"  {name:12s} p50 {p['p50']:8.2f}  p95 {p['p95']:8.2f}   p50 / raw table get p50 = "
            f"{p['p50'] / stats['table get']['p50']:.1f}x")
    return {"get_p50_ms": stats["get"]["p50"], "patch_p50_ms": stats["patch"]["p50"],
            "table_get_p50_ms": stats["table get"]["p50"], "table_update_p50_ms": stats["table update"]["p50"],
            "api_get_ratio": stats["get"]["p50"] / stats["table get"]["p50"],
            "api_patch_ratio": stats["patch"]["p50"] / stats["table update"]["p50"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args(argv)
    with running_stack() as stack:
        measure(stack, n=args.n)


if __name__ == "__main__":
    main()
