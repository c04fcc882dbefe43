"""``make bench``: list the benchmarks, or run one: ``make bench ARGS="jobs --profiles 2000"``."""
from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "sim_tokens": "simulator token endpoint throughput (32 concurrent clients)",
    "profiles_api": "profiles API p50/p95 of create/get/patch next to a raw Table get",
    "validation": "Validation Test upstream requests, Key Vault reads and latency overhead per path",
    "jobs": "batch-check wall time and validations/s against the concurrency bound",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print("benchmarks (python -m devtools.bench NAME [options], or python -m devtools.bench.NAME --help):")
        for name, what in BENCHMARKS.items():
            print(f"  {name:14s} {what}")
        return 0 if not argv else 2
    module = importlib.import_module(f"devtools.bench.{argv[0]}")
    result = module.main(argv[1:])
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
