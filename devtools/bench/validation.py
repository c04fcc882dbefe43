"""Validation Test cost per path, from the simulator's counters, and its latency overhead.

For each path (modern: MFA off; legacy: MFA on with an app password) it validates a saved profile
``--n`` times through ``POST .../profiles/{id}/validate`` with ``--latency`` ms injected on every
Entra / SharePoint / Graph endpoint, and prints the upstream requests and Key Vault reads per
validation and the p50 latency above the injected latency (requests x latency).

    python -m devtools.bench.validation [--n 50] [--latency 50]
"""
from __future__ import annotations

import argparse
import time
import uuid

from devtools.bench.stack import percentiles, running_stack

TENANT = "11111111-1111-4111-8111-111111111111"
PATHS = {
    "modern (MFA off)": {"username": "admin@contoso.onmicrosoft.com", "password": "Demo-Passw0rd!"},
    "legacy (MFA on, app password)": {
        "username": "mfa@contoso.onmicrosoft.com", "password": "qwertyuiopasdfgh", "mfaEnabled": True,
        "adminCenter": {"mode": "custom", "url": "https://contoso-admin.sharepoint.com"}},
}
UPSTREAM = ("entra", "sharepoint", "graph")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--latency", type=int, default=50, help="ms injected per upstream request")
    args = parser.parse_args(argv)
    with running_stack() as stack:
        api, url, control = stack["api"], stack["url"], stack["sim"].control
        print(f"Validation Test per path: n={args.n}, {args.latency} ms injected per Entra/SharePoint/Graph request")
        for label, form in PATHS.items():
            r = api.post(f"{url}/api/tenants/{TENANT}/profiles", json={"name": f"bench {uuid.uuid4().hex}", **form})
            assert r.status_code == 201, r.text
            pid = r.json()["id"]
            warm = api.post(f"{url}/api/tenants/{TENANT}/profiles/{pid}/validate").json()  # discovery, KV token
            assert warm["status"] == "passed", warm
            control.clear_faults()
            for family in UPSTREAM:
                control.add_fault(family, latencyMs=args.latency)
            control.clear_counters()
            samples = []
            for _ in range(args.n):
                t = time.perf_counter()
                out = api.post(f"{url}/api/tenants/{TENANT}/profiles/{pid}/validate").json()
                samples.append((time.perf_counter() - t) * 1000)
                assert out["status"] == "passed", out
            counters = control.counters()
            upstream = sum(v.get("requests", 0) for k, v in counters.items() if k.split(".")[0] in UPSTREAM)
            kv = counters.get("keyvault", {}).get("requests", 0)
            per = upstream / args.n
            p = percentiles(samples)
            injected = per * args.latency
            by_endpoint = ", ".join(f"{k} {v.get('requests', 0) / args.n:g}" for k, v in sorted(counters.items())
                                    if v.get("requests"))
            print(f"  {label}: {per:g} upstream requests and {kv / args.n:g} Key Vault reads per validation "
                  f"({by_endpoint})")
            print(f"    p50 {p['p50']:.1f} ms, p95 {p['p95']:.1f} ms; injected {injected:.0f} ms -> "
                  f"overhead p50 {p['p50'] - injected:.1f} ms ({p['p50'] / injected:.2f}x the injected latency)")
            control.clear_faults()


if __name__ == "__main__":
    main()
