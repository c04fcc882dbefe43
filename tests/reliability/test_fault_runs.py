"""Faults during a batch job, nothing lost (issue 12, point 7).

A job over many profiles runs on this test's own Azurite (persistent, so it can be restarted) and
its own local host, while faults are injected as the job progresses:

1. simulator storms: 429 with ``Retry-After`` on Entra's token endpoint and 503 on Graph;
2. Key Vault down (503 on every vault call) for a while;
3. the host killed with SIGKILL and a new one started (its fetched messages come back after the
   message lease; their claims expire after the deadline + margin);
4. Azurite stopped and started again on the same ports and data.

Afterwards: the job completes; its counters equal its items and every profile has exactly one final
item; the outcome queue holds exactly one distinct CloudEvent id per profile whose result was
stored (a consumer dedupes by id, so a re-sent copy of the same id is harmless and only counted);
no poison message is left unhandled; the work queue is empty.

``test_faults_during_a_job`` (60 profiles) runs in ``make test``; the 500-profile variant with Key
Vault down for 30 s is ``slow`` (``make test-reliability``).
"""
from __future__ import annotations

import base64
import json
import re
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from devtools import azurite as azurite_launcher
from shared import names
from tests.fixtures.app import unique
from tests.fixtures.local_host import LOCAL_KEY, host_json
from tests.waiting import wait_until

PW = "Demo-Passw0rd!"
MESSAGE_LEASE = 10  # seconds; the real host's is 600 (a killed host's messages return after it)
DEADLINE = 8  # VALIDATION_DEADLINE_SECONDS: a dead worker's claims expire after it + the margin
TRANSIENT = (requests.ConnectionError, requests.Timeout, json.JSONDecodeError, KeyError)


@dataclass
class Stack:
    """Own Azurite (persistent) and own host; ``restart_*`` inject the storage and host faults."""

    settings: dict
    host_json_path: Path
    data: Path
    azurite: azurite_launcher.Azurite = None
    host: object = None
    outputs: list[str] = field(default_factory=list)

    def start_azurite(self, ports=None) -> None:
        self.azurite = azurite_launcher.start(ports=ports, location=self.data, log=self.data / "azurite.log")

    def restart_azurite(self) -> None:
        ports = (self.azurite.blob_port, self.azurite.queue_port, self.azurite.table_port)
        self.azurite.stop()
        self.start_azurite(ports)

    def start_host(self) -> None:
        from devtools.local_host import start_local_host_process

        env = {**self.settings, "AzureWebJobsStorage": self.azurite.connection_string}
        sample = Path(__file__).resolve().parents[2] / "local.settings.sample.json"
        self.host = start_local_host_process(env=env, host_json=self.host_json_path, settings=sample, timeout=60,
                                             extra_args=("--message-lease", str(MESSAGE_LEASE)))

    def kill_host(self) -> None:
        self.host.process.kill()  # SIGKILL: no drain, no message given back
        self.host.process.wait(10)
        self.outputs.append(self.host.output)

    def api(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        s.headers["x-functions-key"] = LOCAL_KEY
        return s

    @property
    def url(self) -> str:
        return self.host.url

    def stop(self) -> None:
        if self.host is not None:
            self.host.stop()
            self.outputs.append(self.host.output)
        if self.azurite is not None:
            self.azurite.stop()


@pytest.fixture
def stack(app_settings, tmp_path):
    config = host_json(visibilityTimeout="00:00:01", maxDequeueCount=5)
    path = tmp_path / "host.json"
    path.write_text(json.dumps(config))
    settings = {**app_settings, "UPSTREAM_TIMEOUT_SECONDS": "5", "VALIDATION_DEADLINE_SECONDS": str(DEADLINE),
                # few threads and a slow token endpoint: the job lasts long enough to be interrupted
                "QUEUE_VALIDATION_THREAD_COUNT": "6"}
    s = Stack(settings, path, tmp_path / "azurite")
    s.start_azurite()
    s.start_host()
    try:
        yield s
    finally:
        s.stop()


def job_now(stack: Stack, tenant: str, job_id: str) -> dict | None:
    """The job as the API says now, or None while the host or storage is down."""
    try:
        r = stack.api().get(f"{stack.url}/api/tenants/{tenant}/validation-jobs/{job_id}", timeout=10)
    except TRANSIENT:
        return None
    return r.json() if r.status_code == 200 else None


def wait_done(stack, tenant, job_id, at_least: int, timeout: float) -> dict:
    return wait_until(lambda: (lambda j: j if j and j["done"] >= at_least else False)(job_now(stack, tenant, job_id)),
                      timeout=timeout, interval=0.3, what=f"job {job_id} has {at_least} items done")


def read_outcomes(connection_string: str) -> list[dict]:
    """Every CloudEvent on the outcome queue (received and deleted: this Azurite is the test's own)."""
    queue = QueueClient.from_connection_string(connection_string, names.OUTCOMES_QUEUE)
    events = []
    try:
        while True:
            batch = list(queue.receive_messages(messages_per_page=32, visibility_timeout=300, max_messages=32))
            if not batch:
                return events
            for message in batch:
                events.append(json.loads(base64.b64decode(message.content)))
                queue.delete_message(message)
    except ResourceNotFoundError:
        return events


def queue_count(connection_string: str, name: str) -> int:
    try:
        return QueueClient.from_connection_string(connection_string, name).get_queue_properties() \
            .approximate_message_count
    except ResourceNotFoundError:
        return 0


def run_job_under_faults(stack: Stack, sim, tenant: str, n: int, *, key_vault_down: float,
                         timeout: float) -> dict:
    api = stack.api()

    def make(_):
        r = api.post(f"{stack.url}/api/tenants/{tenant}/profiles", timeout=60, json={
            "name": unique("faults"), "username": "admin@contoso.onmicrosoft.com", "password": PW})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(make, range(n)))
    sim.control.add_fault("entra.token", latencyMs=400)  # the whole run: validations take a while
    r = api.post(f"{stack.url}/api/tenants/{tenant}/validation-jobs", json={"profileIds": ids}, timeout=60)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    injected = []

    wait_done(stack, tenant, job_id, max(1, n // 10), timeout)
    sim.control.add_fault("entra.token", status=429, retryAfter=1, rate=0.3, windowSeconds=6)
    sim.control.add_fault("graph", status=503, retryAfter=1, rate=0.3, windowSeconds=6)
    injected.append("429 storm on entra.token and 503 storm on graph (30% of calls, 6 s)")

    wait_done(stack, tenant, job_id, n // 4, timeout)
    sim.control.add_fault("keyvault", status=503, windowSeconds=key_vault_down)
    injected.append(f"Key Vault down (503 on every call) for {key_vault_down:g} s")

    before_kill = wait_done(stack, tenant, job_id, (2 * n) // 5, timeout)
    stack.kill_host()
    stack.start_host()
    injected.append(f"host SIGKILLed at {before_kill['done']}/{n} done and restarted")

    before_restart = wait_done(stack, tenant, job_id, (3 * n) // 5, timeout)
    stack.restart_azurite()
    injected.append(f"Azurite restarted (persistent data) at {before_restart['done']}/{n} done")
    assert before_kill["done"] < n and before_restart["done"] < n, "the faults came after the job had finished"

    job = wait_until(lambda: (lambda j: j if j and j["state"] in ("completed", "completedWithErrors") else False)(
        job_now(stack, tenant, job_id)), timeout=timeout, interval=0.5, what=f"job {job_id} finished")
    return {"ids": ids, "job": job, "injected": injected}


def check_nothing_lost(stack: Stack, run: dict, record_property) -> None:
    ids, job = run["ids"], run["job"]
    n, cs = len(ids), stack.azurite.connection_string
    # no job stuck, nothing left to do
    wait_until(lambda: queue_count(cs, names.VALIDATION_REQUESTS_QUEUE) == 0, timeout=60, interval=0.5,
               what="the work queue is empty")
    wait_until(lambda: queue_count(cs, names.VALIDATION_REQUESTS_QUEUE + "-poison") == 0, timeout=30, interval=0.5,
               what="every poison message was handled")
    # counters = items, one final item per profile
    assert (job["total"], job["done"]) == (n, n), job
    assert job["passed"] + job["failed"] + job["errors"] == n, job
    table = TableClient.from_connection_string(cs, "ValidationJobs")
    items = [e for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": f"items-{job['id']}"})
             if not e["RowKey"].startswith("~")]
    assert sorted(e["RowKey"] for e in items) == sorted(ids)
    assert all(e["State"] in ("passed", "failed", "error") for e in items), Counter(e["State"] for e in items)
    states = Counter(e["State"] for e in items)
    assert (states["passed"], states["failed"], states["error"]) == (job["passed"], job["failed"], job["errors"])
    # outcomes: one distinct event id per stored result (a consumer dedupes by id)
    events = [e for e in read_outcomes(cs) if not str(e.get("id", "")).endswith(":explained")]
    by_profile: dict[str, set] = defaultdict(set)
    for event in events:
        by_profile[event["data"]["profileId"]].add(event["id"])
    poisoned = {e["RowKey"] for e in items if e.get("MessageId") == "POISON_MESSAGE"}
    lost = [p for p in ids if p not in poisoned and len(by_profile[p]) == 0]
    duplicated = {p: sorted(v) for p, v in by_profile.items() if len(v) > 1}
    # poison: every message the host gave up on was handled by the poison function
    poison_lines = re.findall(r"poison work message \S+: (\w+)", "".join(stack.outputs) + stack.host.output)
    assert set(poison_lines) <= {"error", "alreadyFinal", "raced"}, Counter(poison_lines)
    summary = (f"{n} profiles; faults: {'; '.join(run['injected'])}; job {job['passed']} passed, "
               f"{job['failed']} failed, {job['errors']} errors, {job['throttled']} throttled rounds; "
               f"outcome events {len(events)} (distinct ids {len({e['id'] for e in events})}); "
               f"lost {len(lost)}, duplicated {len(duplicated)}; poison handled {dict(Counter(poison_lines))}, "
               f"items poisoned {len(poisoned)}")
    record_property("fault_run", summary)
    print(summary)
    assert not lost, (lost[:5], summary)
    assert not duplicated, (list(duplicated.items())[:5], summary)
    assert all(len(by_profile[p]) <= 1 for p in poisoned), summary
    assert len({e["id"] for e in events}) == n - len([p for p in poisoned if not by_profile[p]]), summary


def test_faults_during_a_job(stack, sim, tenant, record_property):
    run = run_job_under_faults(stack, sim, tenant, 60, key_vault_down=8, timeout=75)
    check_nothing_lost(stack, run, record_property)


@pytest.mark.slow
def test_faults_during_a_500_profile_job(stack, sim, tenant, record_property):
    run = run_job_under_faults(stack, sim, tenant, 500, key_vault_down=30, timeout=300)
    check_nothing_lost(stack, run, record_property)
