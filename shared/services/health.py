"""Dependency health: can this instance reach Table Storage, Queue Storage and Key Vault?

Each dependency is an adapter whose ``ping()`` makes one cheap authenticated round trip.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Mapping

from shared.domain.ports import Pingable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DependencyHealth:
    status: str  # up | down
    latency_ms: float
    error: str | None = None


@dataclass(frozen=True)
class HealthReport:
    status: str  # healthy | unhealthy
    dependencies: dict[str, DependencyHealth]

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"


@dataclass
class HealthService:
    dependencies: Mapping[str, Pingable]

    def check(self) -> HealthReport:
        """Ping every dependency; down when its ping raises (the error's type is the detail)."""
        results = {name: _ping(name, dep) for name, dep in self.dependencies.items()}
        healthy = all(r.status == "up" for r in results.values())
        return HealthReport("healthy" if healthy else "unhealthy", results)


def _ping(name: str, dependency: Pingable) -> DependencyHealth:
    started = time.perf_counter()
    try:
        dependency.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        log.warning("health: %s is down (%s)", name, type(exc.__cause__ or exc).__name__)
        return DependencyHealth("down", _ms(started), type(exc.__cause__ or exc).__name__)
    return DependencyHealth("up", _ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
