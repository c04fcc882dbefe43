"""Batch-check throughput: a job over ``--profiles`` profiles with ``--latency`` ms injected on every
Entra / Graph request, run by the queue worker on the local host.

Prints the job's wall time (202 to completed), validations/s, and the ratio to the bound that the
host's configured concurrency and the simulator's latency allow:
bound = concurrency / (upstream requests per validation x latency), where concurrency is what the
host runs at once: min(worker threads, batchSize + newBatchThreshold).

    python -m devtools.bench.jobs [--profiles 2000] [--latency 100]
"""
from __future__ import annotations

import argparse
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from devtools.bench.stack import running_stack

TENANT = "11111111-1111-4111-8111-111111111111"
UPSTREAM_PER_VALIDATION = 2  # modern path: token + memberOf (see shared/services/validation.py)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to see whether the worker is CPU-bound."""
    import os

    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--latency", type=int, default=100)
    parser.add_argument("--instances", type=int, default=1,
                        help="local host processes polling the queue (Function App instances after scale-out)")
    args = parser.parse_args(argv)
    with running_stack(instances=args.instances) as stack:
        api, url, control = stack["api"], stack["url"], stack["sim"].control
        queues = stack["host_json"]["extensions"]["queues"]
        import json

        threads_setting = json.loads(open("local.settings.sample.json").read())["Values"].get(
            "PYTHON_THREADPOOL_THREAD_COUNT") or str(min(32, (os.cpu_count() or 1) + 4))
        concurrency = args.instances * min(int(threads_setting), queues["batchSize"] + queues["newBatchThreshold"])

        def create(i: int) -> str:
            r = api.post(f"{url}/api/tenants/{TENANT}/profiles", json={
                "name": f"bench {uuid.uuid4().hex}", "username": "admin@contoso.onmicrosoft.com",
                "password": "Demo-Passw0rd!"})
            assert r.status_code == 201, r.text
            return r.json()["id"]

        t = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            ids = list(pool.map(create, range(args.profiles)))
        print(f"created {len(ids)} profiles in {time.perf_counter() - t:.1f} s")
        warm = api.post(f"{url}/api/tenants/{TENANT}/profiles/{ids[0]}/validate").json()
        assert warm["status"] == "passed", warm
        for family in ("entra", "graph"):
            control.add_fault(family, latencyMs=args.latency)
        control.clear_counters()

        host_pids, azurite_pid = [h.process.pid for h in stack["hosts"]], stack["azurite"].process.pid
        cpu_before = sum(map(_cpu_seconds, host_pids))
        azurite_before, own_before = _cpu_seconds(azurite_pid), sum(os.times()[:2])
        t = time.perf_counter()
        r = api.post(f"{url}/api/tenants/{TENANT}/validation-jobs", json={"profileIds": ids})
        assert r.status_code == 202, r.text
        enqueued = time.perf_counter() - t
        job_url = f"{url}{r.headers['Location']}"
        while True:
            job = api.get(job_url).json()
            if job["state"] in ("completed", "completedWithErrors"):
                break
            time.sleep(0.25)
        wall = time.perf_counter() - t
        cpu = sum(map(_cpu_seconds, host_pids)) - cpu_before
        azurite_cpu, own_cpu = _cpu_seconds(azurite_pid) - azurite_before, sum(os.times()[:2]) - own_before
        counters = control.counters()
        upstream = sum(v.get("requests", 0) for k, v in counters.items() if k.split(".")[0] in ("entra", "graph"))
        rate = job["done"] / wall
        bound = concurrency / (UPSTREAM_PER_VALIDATION * args.latency / 1000)
        print(f"job of {job['total']} profiles at {args.latency} ms per upstream request: {job['state']}, "
              f"passed {job['passed']}, failed {job['failed']}, errors {job['errors']}")
        print(f"  enqueue (202) {enqueued:.2f} s; wall time {wall:.1f} s; {rate:.1f} validations/s")
        print(f"  upstream requests per validation {upstream / job['done']:.2f}; host CPU "
              f"{cpu * 1000 / job['done']:.1f} ms per validation ({cpu / wall:.2f} cores busy on average)")
        print(f"  machine: {args.instances} host process(es) {cpu / wall:.2f} + Azurite {azurite_cpu / wall:.2f} + simulator and this script "
              f"{own_cpu / wall:.2f} = {(cpu + azurite_cpu + own_cpu) / wall:.2f} of {os.cpu_count()} cores busy")
        print(f"  bound = concurrency {concurrency} ({args.instances} x min(threads, batchSize + newBatchThreshold)) / ({UPSTREAM_PER_VALIDATION} x {args.latency} ms) = "
              f"{bound:.1f} validations/s -> ratio {rate / bound:.2f}")


if __name__ == "__main__":
    main()
