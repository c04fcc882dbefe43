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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args(argv)
    with running_stack() as stack:
        from azure.data.tables import TableClient

        api, url = stack["api"], stack["url"]
        timings: dict[str, list[float]] = {"create": [], "get": [], "patch": [], "table get": []}
        table = TableClient.from_connection_string(stack["azurite"].connection_string, "Profiles")
        for i in range(10):  # warm-up: connections, Key Vault token, table creation
            api.get(f"{url}/api/tenants/{TENANT}/profiles?pageSize=1")
        for i in range(args.n):
            body = {"name": f"bench {uuid.uuid4().hex}", "username": "admin@contoso.onmicrosoft.com",
                    "password": "Demo-Passw0rd!"}
            t = time.perf_counter()
            r = api.post(f"{url}/api/tenants/{TENANT}/profiles", json=body)
            timings["create"].append((time.perf_counter() - t) * 1000)
            assert r.status_code == 201, r.text
            pid, etag = r.json()["id"], r.headers["ETag"]
            t = time.perf_counter()
            assert api.get(f"{url}/api/tenants/{TENANT}/profiles/{pid}").status_code == 200
            timings["get"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            r = api.patch(f"{url}/api/tenants/{TENANT}/profiles/{pid}", json={"description": f"d{i}"},
                          headers={"If-Match": etag})
            timings["patch"].append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
            t = time.perf_counter()
            table.get_entity(TENANT, pid)
            timings["table get"].append((time.perf_counter() - t) * 1000)
        raw = percentiles(timings["table get"])
        print(f"profiles API on the local host, n={args.n} each (ms)")
        for name, samples in timings.items():
            p = percentiles(samples)
            print(f"  {name:10s} p50 {p['p50']:8.2f}  p95 {p['p95']:8.2f}   p50 / raw table get p50 = "
                  f"{p['p50'] / raw['p50']:.1f}x")


if __name__ == "__main__":
    main()
