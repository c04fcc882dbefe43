"""Batch-check throughput: a job over ``--profiles`` profiles with ``--latency`` ms injected on every
Entra / Graph request, run by the queue worker on the local host.

Prints the job's wall time (202 to completed), validations/s, and the ratio to the bound that the
host's configured concurrency and the simulator's latency allow:
bound = concurrency / (upstream requests per validation x latency), where concurrency is what the
host runs at once: min(worker threads, (batchSize + newBatchThreshold) x profiles per work group).

    python -m devtools.bench.jobs [--profiles 2000] [--latency 100]
"""
from __future__ import annotations

import argparse
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from devtools.bench.stack import running_stack
from shared.domain.jobs import WORK_GROUP

TENANT = "11111111-1111-4111-8111-111111111111"
UPSTREAM_PER_VALIDATION = 2  # modern path: token + memberOf (see shared/services/validation.py)


def _tree(pid: int) -> list:
    """The process and its live descendants (a host and its language worker processes)."""
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants (the host's worker processes
    are long-lived children, so their time is not in the parent's ``cutime`` yet)."""
    import psutil

    total = 0.0
    for proc in _tree(pid):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def rss_mb(pid: int) -> float:
    """Resident memory of a host and its worker processes, in MB."""
    import psutil

    total = 0
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def create_profiles(api, url: str, tenant: str, count: int, *, out=print) -> list[str]:
    """``count`` new profiles of the demo's admin account, 16 requests at a time."""

    retried = []

    def create(i: int) -> str:
        body = {"name": f"bench {uuid.uuid4().hex}", "username": "admin@contoso.onmicrosoft.com",
                "password": "Demo-Passw0rd!"}
        for _ in range(3):  # as a portal does: a 503 says when to come back
            r = api.post(f"{url}/api/tenants/{tenant}/profiles", json=body)
            if r.status_code != 503:
                break
            retried.append(r.json().get("detail"))
            time.sleep(int(r.headers.get("Retry-After", "1")))
        assert r.status_code == 201, r.text
        return r.json()["id"]

    t = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(create, range(count)))
    out(f"created {len(ids)} profiles in {time.perf_counter() - t:.1f} s"
        + (f" ({len(retried)} answered 503 first and were sent again: {sorted(set(retried))})" if retried else ""))
    return ids


def run_job(api, url: str, tenant: str, ids: list[str]) -> tuple[dict, float, float]:
    """One job over ``ids``, polled until it is done: (its last status, seconds to 202, seconds to done)."""
    t = time.perf_counter()
    r = api.post(f"{url}/api/tenants/{tenant}/validation-jobs", json={"profileIds": ids})
    assert r.status_code == 202, r.text
    enqueued = time.perf_counter() - t
    job_url = f"{url}{r.headers['Location']}"
    while True:
        job = api.get(job_url).json()
        if job["state"] in ("completed", "completedWithErrors"):
            return job, enqueued, time.perf_counter() - t
        time.sleep(0.25)


def measure(stack: dict, *, profiles: int = 2000, latency: int = 100, instances: int = 1, out=print,
            ids: list[str] | None = None, tenant: str | None = None) -> dict:
    """One job over ``profiles`` profiles (``ids``: existing ones of ``tenant``, else new): wall
    time, rate, ratio to the bound, CPU per validation, and the job status GET next to a profile
    GET once it is done."""
    from devtools.bench.stack import host_settings, percentiles, worker_processes

    api, url, control = stack["api"], stack["url"], stack["sim"].control
    queues = stack["host_json"]["extensions"]["queues"]
    threads = int(host_settings(stack).get("QUEUE_VALIDATION_THREAD_COUNT") or 24)
    # each worker process has its own executor; the host fetches batchSize + newBatchThreshold messages
    # at most, each a work group of WORK_GROUP profiles validated at once
    workers = worker_processes(stack)
    concurrency = instances * min(threads * workers,
                                  (queues["batchSize"] + queues["newBatchThreshold"]) * WORK_GROUP)
    tenant = tenant or TENANT
    ids = ids[:profiles] if ids is not None else create_profiles(api, url, tenant, profiles, out=out)
    for _ in range(worker_processes(stack)):  # each worker process in turn
        warm = api.post(f"{url}/api/tenants/{tenant}/profiles/{ids[0]}/validate").json()
        assert warm["status"] == "passed", warm
    control.clear_faults()
    for family in ("entra", "graph"):
        control.add_fault(family, latencyMs=latency)
    control.clear_counters()

    host_pids, azurite_pid = [h.process.pid for h in stack["hosts"]], stack["azurite"].process.pid
    cpu_before = sum(map(_cpu_seconds, host_pids))
    azurite_before, own_before = _cpu_seconds(azurite_pid), sum(os.times()[:2])
    job, enqueued, wall = run_job(api, url, tenant, ids)
    job_url = f"{url}/api/tenants/{tenant}/validation-jobs/{job['id']}"
    cpu = sum(map(_cpu_seconds, host_pids)) - cpu_before
    azurite_cpu, own_cpu = _cpu_seconds(azurite_pid) - azurite_before, sum(os.times()[:2]) - own_before
    control.clear_faults()
    counters = control.counters()
    upstream = sum(v.get("requests", 0) for k, v in counters.items() if k.split(".")[0] in ("entra", "graph"))
    rate = job["done"] / wall
    bound = concurrency / (UPSTREAM_PER_VALIDATION * latency / 1000)
    status_ms, get_ms = [], []
    for _ in range(30):
        t0 = time.perf_counter()
        api.get(job_url)
        status_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        api.get(f"{url}/api/tenants/{tenant}/profiles/{ids[0]}")
        get_ms.append((time.perf_counter() - t0) * 1000)
    status_p50, get_p50 = percentiles(status_ms)["p50"], percentiles(get_ms)["p50"]
    out(f"job of {job['total']} profiles at {latency} ms per upstream request: {job['state']}, "
        f"passed {job['passed']}, failed {job['failed']}, errors {job['errors']}")
    out(f"  enqueue (202) {enqueued:.2f} s; wall time {wall:.1f} s; {rate:.1f} validations/s")
    out(f"  upstream requests per validation {upstream / job['done']:.2f}; host CPU "
        f"{cpu * 1000 / job['done']:.1f} ms per validation ({cpu / wall:.2f} cores busy on average)")
    out(f"  machine: {instances} host process(es) {cpu / wall:.2f} + Azurite {azurite_cpu / wall:.2f} + simulator "
        f"and this script {own_cpu / wall:.2f} = {(cpu + azurite_cpu + own_cpu) / wall:.2f} of {os.cpu_count()} "
        f"cores busy")
    out(f"  bound = concurrency {concurrency} ({instances} x min(threads x worker processes, (batchSize + "
        f"newBatchThreshold) x {WORK_GROUP})) / "
        f"({UPSTREAM_PER_VALIDATION} x {latency} ms) = {bound:.1f} validations/s -> ratio {rate / bound:.2f}")
    out(f"  job status GET p50 {status_p50:.1f} ms; profile GET p50 {get_p50:.1f} ms")
    return {"profiles": job["total"], "wall_s": wall, "rate": rate, "ratio_to_bound": rate / bound,
            "worker_cpu_ms_per_validation": cpu * 1000 / job["done"], "enqueue_s": enqueued,
            "per_profile_ms": wall * 1000 / job["done"], "status_p50_ms": status_p50, "profile_get_p50_ms": get_p50,
            "upstream_per_validation": upstream / job["done"], "host_cores_busy": cpu / wall,
            "azurite_cores_busy": azurite_cpu / wall, "concurrency": concurrency,
            "azurite_cpu_ms_per_validation": azurite_cpu * 1000 / job["done"]}


class OutcomeConsumer:
    """A portal reading the outcome events while jobs run (receive 32, delete each), so they do not
    pile up: Azurite's queue operations cost in proportion to every message it holds, in any queue
    (a receive and delete on a short queue took 13 ms of its CPU with 100 messages in another queue,
    195 ms with 8,000), and an unread event per validation made the work queue slower and slower."""

    def __init__(self, connection_string: str):
        import threading

        from azure.storage.queue import QueueClient

        from shared import names

        self._queue = QueueClient.from_connection_string(connection_string, names.OUTCOMES_QUEUE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outcome-consumer", daemon=True)
        self.events = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = list(self._queue.receive_messages(messages_per_page=32, max_messages=32))
            except Exception:  # noqa: BLE001 - the queue is created by the host's first publication
                messages = []
            for m in messages:
                self._queue.delete_message(m)
            self.events += len(messages)
            if not messages:
                self._stop.wait(0.2)

    def __enter__(self) -> "OutcomeConsumer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def measure_growth(stack: dict, sizes: tuple[int, ...], *, latency: int = 100, out=print) -> dict:
    """Jobs of growing size on one stack (profiles made once, reused by the larger jobs): the
    per-profile wall time of each, its growth over the first, and the host's memory after the
    first two jobs (2 x sizes[0] validations) and after the last (every validation)."""
    api, url, pid = stack["api"], stack["url"], stack["hosts"][0].process.pid
    ids = create_profiles(api, url, TENANT, max(sizes), out=out)
    runs, rss, done = [], [], 0
    with OutcomeConsumer(stack["azurite"].connection_string) as portal:
        for i, size in enumerate((sizes[0], *sizes)):  # the first job warms the host up
            run = measure(stack, profiles=size, latency=latency, ids=ids, out=out)
            done += size
            if i:
                runs.append(run)
            rss.append((done, rss_mb(pid)))
    out(f"the portal read {portal.events} outcome events")
    growth = max(r["per_profile_ms"] for r in runs[1:]) / runs[0]["per_profile_ms"]
    (first_count, first_mb), (last_count, last_mb) = rss[1], rss[-1]
    times = " -> ".join(f"{r['per_profile_ms']:.1f} ms" for r in runs)
    cpu = " -> ".join(f"{r['worker_cpu_ms_per_validation']:.0f}/{r['azurite_cpu_ms_per_validation']:.0f} ms"
                      for r in runs)
    out(f"per-profile time {times} for "
        f"{' -> '.join(str(s) for s in sizes)} profiles (growth {growth:.2f}); host RSS {first_mb:.1f} MB after "
        f"{first_count} validations, {last_mb:.1f} MB after {last_count}")
    out(f"CPU per validation, host/Azurite: {cpu}")
    return {"runs": runs, "largest": runs[-1], "per_profile_time_growth": round(growth, 2),
            "rss": [{"validations": n, "mb": round(mb, 1)} for n, mb in rss],
            "rss_growth_mb": round(last_mb - first_mb, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--latency", type=int, default=100)
    parser.add_argument("--instances", type=int, default=1,
                        help="local host processes polling the queue (Function App instances after scale-out)")
    args = parser.parse_args(argv)
    with running_stack(instances=args.instances) as stack, OutcomeConsumer(stack["azurite"].connection_string):
        measure(stack, profiles=args.profiles, latency=args.latency, instances=args.instances)


if __name__ == "__main__":
    main()
