"""``make bench``: every scenario against its target (:mod:`devtools.bench.suite`); ``make bench
ARGS=list`` lists the benchmarks; ``make bench ARGS="jobs --profiles 2000"`` runs one."""
from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "sim_tokens": "simulator token endpoint throughput (32 concurrent clients)",
    "profiles_api": "profiles API p50/p95 of create/get/patch next to a raw Table get",
    "validation": "Validation Test upstream requests, Key Vault reads and latency overhead per path",
    "jobs": "batch-check wall time and validations/s against the concurrency bound",
    "azurite_profile": "Azurite's CPU by function per validation, a small job against a large one (V8 profile)",
    "suite": "every scenario against its target: a table, bench-results.json, exit 1 when one is missed",
}


def main(argv: list[str]) -> int:
    if not argv:
        argv = ["suite"]
    if argv[0] not in BENCHMARKS:
        print("benchmarks (python -m devtools.bench NAME [options], or python -m devtools.bench.NAME --help):")
        for name, what in BENCHMARKS.items():
            print(f"  {name:14s} {what}")
        return 0 if argv[0] == "list" else 2
    module = importlib.import_module(f"devtools.bench.{argv[0]}")
    result = module.main(argv[1:])
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
