"""Dependency health: can this instance reach Table Storage, Queue Storage and Key Vault?"""
from __future__ import annotations

import time
from typing import Any, Callable

from shared import names


def _probe(check: Callable[[], None]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the type is the detail
        return {"status": "down", "latencyMs": round((time.perf_counter() - started) * 1000, 1),
                "error": type(exc).__name__}
    return {"status": "up", "latencyMs": round((time.perf_counter() - started) * 1000, 1)}


def check_health(deps) -> dict[str, Any]:
    """``{"status": "healthy"|"unhealthy", "dependencies": {table, queue, keyVault}}``.

    Key Vault is reachable when an authenticated read of a name that need not exist answers
    (found or 404); a 401/403 or no answer is down.
    """
    from azure.core.exceptions import ResourceNotFoundError

    def table() -> None:
        next(iter(deps.table(names.PROFILES_TABLE).query_entities("PartitionKey eq 'health'",
                                                                  results_per_page=1)), None)

    def queue() -> None:
        deps.queue(names.VALIDATION_REQUESTS_QUEUE).get_queue_properties()

    def key_vault() -> None:
        try:
            deps.secret_client.get_secret("health-probe")
        except ResourceNotFoundError:
            pass

    checks = {"table": table, "queue": queue, "keyVault": key_vault}
    results = {name: _probe(check) for name, check in checks.items()}
    healthy = all(r["status"] == "up" for r in results.values())
    return {"status": "healthy" if healthy else "unhealthy", "dependencies": results}
