"""HTTP stays responsive under slow upstreams (issue 12, point 4).

The storm the issue measured: Entra slowed to 8 s and more Validation Tests in flight than the
Python worker's thread pool has threads (``PYTHON_THREADPOOL_THREAD_COUNT`` 24, as deployed; 28
validations). Before, every trigger was sync and ran in that pool, so an unrelated ``GET profile``
queued behind the validations (7 s measured). Now the validation triggers are ``async def`` and
block only their own executor (``shared/executors.py``), as the real worker honours: the p95 of
``GET profile`` under the storm stays within 3 x its unloaded p95, both measured in this run.

The host is this test's own (its own settings; it loads only the functions the test calls, so it
takes no message from the session's queues).
"""
from __future__ import annotations

import json
import statistics
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.fixtures.app import unique
from tests.fixtures.local_host import LOCAL_KEY, host_json
from tests.waiting import wait_until

POOL = 24  # PYTHON_THREADPOOL_THREAD_COUNT as deployed (README, infra/app/api.bicep)
IN_FLIGHT = 28  # the storm: more validations than the pool has threads
ENTRA_LATENCY_MS = 8000  # as in the issue
SAMPLES = 100  # unloaded GETs before the storm, and as many after it (the machine's load drifts)
#: Seconds of GETs under the storm: longer than one validation waits on Entra, so with the callers'
#: staggered starts the samples span validations starting, waiting and finishing.
LOADED_SECONDS = 10.0
FUNCTIONS = ["create_profile", "get_profile", "validate_profile"]


@pytest.fixture(scope="module")
def storm_host(app_settings, tmp_path_factory):
    from devtools.local_host import start_local_host_process

    path = Path(tmp_path_factory.mktemp("storm")) / "host.json"
    path.write_text(json.dumps(host_json(functions=FUNCTIONS)))
    sample = Path(__file__).resolve().parents[2] / "local.settings.sample.json"
    process = start_local_host_process(env={**app_settings, "PYTHON_THREADPOOL_THREAD_COUNT": str(POOL)},
                                       host_json=path, settings=sample, timeout=60)
    try:
        yield process
    finally:
        process.stop()


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers["x-functions-key"] = LOCAL_KEY
    return s


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[18]


def timed_gets(client: requests.Session, url: str, *, count: int | None = None,
               seconds: float | None = None) -> list[float]:
    """Sequential GETs, ``count`` of them or for ``seconds``; their durations."""
    out: list[float] = []
    ends = time.monotonic() + seconds if seconds else None
    while (count is None or len(out) < count) and (ends is None or time.monotonic() < ends):
        began = time.perf_counter()
        response = client.get(url, timeout=60)
        out.append(time.perf_counter() - began)
        assert response.status_code == 200, response.text
    return out


# A measurement of ~45 s whose margin on a 2-core machine is small (ratios 1.1-2.8 against 3):
# run by `make test-reliability`, kept out of `make test` (CI's time budget, and no flaky gate).
@pytest.mark.slow
def test_get_profile_p95_under_a_slow_entra_storm(storm_host, sim, tenant, record_property):
    base = storm_host.url + f"/api/tenants/{tenant}/profiles"
    client = session()
    created = client.post(base, json={"name": unique("storm"), "username": "admin@contoso.onmicrosoft.com",
                                      "password": "Demo-Passw0rd!"}, timeout=60)
    assert created.status_code == 201, created.text
    profile = f"{base}/{created.json()['id']}"
    assert client.post(profile + "/validate", timeout=60).json()["status"] == "passed"  # warm the upstream path
    timed_gets(client, profile, count=10)  # warm-up
    unloaded = timed_gets(client, profile, count=SAMPLES)

    sim.control.add_fault("entra.token", latencyMs=ENTRA_LATENCY_MS)
    stop, lock = threading.Event(), threading.Lock()
    state = {"in_flight": 0, "done": 0, "statuses": set()}

    def validate_forever(offset: float) -> None:
        own = session()
        stop.wait(offset)  # staggered starts: validations finish spread out, not in one wave
        while not stop.is_set():
            with lock:
                state["in_flight"] += 1
            try:
                status = own.post(profile + "/validate", timeout=120).status_code
            finally:
                with lock:
                    state["in_flight"] -= 1
            with lock:
                state["done"] += 1
                state["statuses"].add(status)

    stagger = ENTRA_LATENCY_MS / 1000 / IN_FLIGHT
    callers = [threading.Thread(target=validate_forever, args=(i * stagger,), daemon=True) for i in range(IN_FLIGHT)]
    for t in callers:
        t.start()
    try:
        wait_until(lambda: state["in_flight"] == IN_FLIGHT, timeout=15, what="every validation sent")
        # The first wave is waiting on Entra (the slowed token calls have arrived) ...
        wait_until(lambda: sim.control.counters().get("entra.token", {}).get("requests", 0) >= IN_FLIGHT // 2,
                   timeout=15, interval=0.1, what="the storm's token calls reached the simulator")
        loaded = timed_gets(client, profile, seconds=LOADED_SECONDS)
        still_in_flight = state["in_flight"]
    finally:
        stop.set()
        for t in callers:
            t.join(60)
    sim.control.clear_faults()
    unloaded += timed_gets(client, profile, count=SAMPLES)
    assert state["statuses"] <= {200}, state  # every validation answered (slowly), none refused
    assert still_in_flight == IN_FLIGHT  # ... and the storm lasted the whole measurement

    before, during = p95(unloaded), p95(loaded) if len(loaded) >= 2 else max(loaded)
    figures = (f"GET profile p95 unloaded {before * 1000:.1f} ms, under {IN_FLIGHT} validations with Entra "
               f"at {ENTRA_LATENCY_MS} ms and a pool of {POOL}: {during * 1000:.1f} ms over {len(loaded)} "
               f"requests (ratio {during / before:.1f}); validations finished meanwhile: {state['done']}")
    record_property("starvation", figures)
    print(figures)
    assert during <= 3 * before, figures
