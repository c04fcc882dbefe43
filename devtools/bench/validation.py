"""Validation Test cost per path, from the simulator's counters, and its latency overhead.

For each path (modern: MFA off; legacy: MFA on with an app password; app: an app profile with the
simulator's demo certificate, whose Key Vault operations are signatures, not reads) it validates a saved profile
``--n`` times through ``POST .../profiles/{id}/validate`` with ``--latency`` ms injected on every
Entra / SharePoint / Graph endpoint, and prints the upstream requests and Key Vault reads per
validation and the p50 latency above the injected latency (requests x latency).

    python -m devtools.bench.validation [--n 50] [--latency 50]
"""
from __future__ import annotations

import argparse
import time
import uuid

from devtools.bench.stack import percentiles, running_stack, worker_processes
from devtools.m365sim.faults import ENDPOINTS

TENANT = "11111111-1111-4111-8111-111111111111"
PATHS = {
    "modern (MFA off)": {"username": "admin@contoso.onmicrosoft.com", "password": "Demo-Passw0rd!"},
    "legacy (MFA on, app password)": {
        "username": "mfa@contoso.onmicrosoft.com", "password": "qwertyuiopasdfgh", "mfaEnabled": True,
        "adminCenter": {"mode": "custom", "url": "https://contoso-admin.sharepoint.com"}},
}
UPSTREAM = ("entra", "sharepoint", "graph")
APP_ID = "c0ffee00-0000-4000-8000-000000000001"  # the demo app: consented, the demo certificate registered


def _app_profile(control) -> dict:
    import base64
    from pathlib import Path

    pfx = base64.b64encode(Path(control.generated_certificate("demo-app")["pfxPath"]).read_bytes()).decode()
    return {"kind": "app", "clientId": APP_ID, "certificate": {"pfx": pfx, "password": "demo"}}


def measure(stack: dict, *, n: int = 50, latency: int = 50, out=print) -> dict:
    """Per path: upstream requests and Key Vault reads per validation, p50/p95 and the overhead."""
    api, url, control = stack["api"], stack["url"], stack["sim"].control
    out(f"Validation Test per path: n={n}, {latency} ms injected per Entra/SharePoint/Graph request")
    figures = {}
    paths = {**PATHS, "app (certificate, Key Vault signs)": _app_profile(control)}
    for label, form in paths.items():
        r = api.post(f"{url}/api/tenants/{TENANT}/profiles", json={"name": f"bench {uuid.uuid4().hex}", **form})
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        for _ in range(worker_processes(stack)):  # each worker process in turn: discovery, KV token
            warm = api.post(f"{url}/api/tenants/{TENANT}/profiles/{pid}/validate").json()
            assert warm["status"] == "passed", warm
        control.clear_faults()
        for family in UPSTREAM:
            control.add_fault(family, latencyMs=latency)
        control.clear_counters()
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            result = api.post(f"{url}/api/tenants/{TENANT}/profiles/{pid}/validate").json()
            samples.append((time.perf_counter() - t) * 1000)
            assert result["status"] == "passed", result
        counters = control.counters()
        # One count per request: the simulator's endpoint counters (ENDPOINTS); the finer ones
        # (entra.token.client_credentials, sharepoint.app, graph.app ...) classify the same requests.
        upstream = sum(v.get("requests", 0) for k, v in counters.items()
                       if k in ENDPOINTS and k.split(".")[0] in UPSTREAM)
        kv_ops = {k: v.get("requests", 0) for k, v in counters.items() if k.startswith("keyvault.")}
        signs = kv_ops.pop("keyvault.keys.sign", 0)
        kv = sum(kv_ops.values())
        per = upstream / n
        p = percentiles(samples)
        injected = per * latency
        by_endpoint = ", ".join(f"{k} {v.get('requests', 0) / n:g}" for k, v in sorted(counters.items())
                                if v.get("requests"))
        out(f"  {label}: {per:g} upstream requests, {kv / n:g} Key Vault reads and {signs / n:g} Key Vault "
            f"signatures per validation ({by_endpoint})")
        out(f"    p50 {p['p50']:.1f} ms, p95 {p['p95']:.1f} ms; injected {injected:.0f} ms -> "
            f"overhead p50 {p['p50'] - injected:.1f} ms ({p['p50'] / injected:.2f}x the injected latency)")
        figures[label.split(" ")[0]] = {"upstream": per, "keyvault": kv / n, "keyvault_signs": signs / n,
                                        "p50_ms": p["p50"],
                                        "overhead_p50_ms": p["p50"] - injected}
        control.clear_faults()
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--latency", type=int, default=50, help="ms injected per upstream request")
    args = parser.parse_args(argv)
    with running_stack() as stack:
        measure(stack, n=args.n, latency=args.latency)


if __name__ == "__main__":
    main()
