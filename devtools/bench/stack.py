"""The whole product for a benchmark: Azurite, the simulator and ``function_app`` on the local host.

Same wiring as the e2e fixtures (``tests/fixtures/app.py``), as a context manager that scripts can use.
"""
from __future__ import annotations

import contextlib
import json
import statistics
import tempfile
from pathlib import Path
from typing import Iterator

import requests

from devtools import azurite as azurite_launcher

ROOT = Path(__file__).resolve().parents[2]
KEY = "local-dev-key"


@contextlib.contextmanager
def running_stack(*, queues: dict | None = None, env: dict | None = None, instances: int = 1,
                  azurite_inspect_port: int | None = None) -> Iterator[dict]:
    """Yield ``{"url", "api", "sim", "azurite", "host", "hosts"}`` with everything started; stop it all after.

    :param instances: local host processes on the same storage, like Function App instances after
        scale-out (each polls the queues; ``url`` is the first one's).
    :param azurite_inspect_port: Azurite with Node's inspector open on this port.
    """
    from devtools.local_host import start_local_host_process
    from devtools.m365sim import DEMO_SCENARIO, Simulator

    store = azurite_launcher.start(inspect_port=azurite_inspect_port)
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    sim = Simulator(DEMO_SCENARIO, port=0, state_dir=tmp / "sim").start()
    host_json = json.loads((ROOT / "host.json").read_text())
    host_json["extensions"]["queues"].update({"maxPollingInterval": "00:00:00.2", **(queues or {})})
    (tmp / "host.json").write_text(json.dumps(host_json))
    settings = {**sim.settings_env(), "AzureWebJobsStorage": store.connection_string, "LOCAL_FUNCTION_KEY": KEY,
                "REVALIDATION_SPREAD_MINUTES": "0", **(env or {})}
    hosts = [start_local_host_process(env=settings, host_json=tmp / "host.json",
                                      settings=ROOT / "local.settings.sample.json", timeout=60)
             for _ in range(instances)]
    host = hosts[0]
    api = requests.Session()
    api.trust_env = False
    api.headers["x-functions-key"] = KEY
    try:
        yield {"url": host.url, "api": api, "sim": sim, "azurite": store, "host": host, "hosts": hosts,
               "host_json": host_json, "env": env or {}}
    finally:
        api.close()
        for h in hosts:
            h.stop()
        sim.stop()
        store.stop()


def host_settings(stack: dict) -> dict[str, str]:
    """The app settings the stack's host runs with (the sample's values, then the stack's ``env``)."""
    return {**json.loads((ROOT / "local.settings.sample.json").read_text())["Values"], **stack.get("env", {})}


def worker_processes(stack: dict) -> int:
    """``FUNCTIONS_WORKER_PROCESS_COUNT`` of the stack's host (each process warms up on its own:
    connections, the app's Key Vault token, discovery)."""
    return int(host_settings(stack).get("FUNCTIONS_WORKER_PROCESS_COUNT") or 1)


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": round(q[49], 2), "p95": round(q[94], 2), "n": len(ordered)}
