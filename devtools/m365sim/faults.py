"""Runtime faults (latency, 429/5xx with Retry-After, connection resets, outages, per-user SharePoint
throttling) and the per-endpoint request counters.

Endpoint names are stable: ``entra.discovery``, ``entra.jwks``, ``entra.userrealm``, ``entra.token``,
``sharepoint.sts`` (extSTS.srf), ``sharepoint.signin`` (wsignin1.0 / idcrl.svc), ``sharepoint.api``,
``graph``, ``keyvault``. A rule's ``endpoint`` may also be ``*``, ``entra``/``entra.*`` or
``sharepoint``/``sharepoint.*``.
"""
from __future__ import annotations

import copy
import math
import time
from collections import defaultdict
from dataclasses import dataclass

ENDPOINTS = ("entra.discovery", "entra.jwks", "entra.userrealm", "entra.token", "sharepoint.sts",
             "sharepoint.signin", "sharepoint.api", "graph", "keyvault")


def endpoint_matches(pattern: str, endpoint: str) -> bool:
    if pattern == "*" or pattern == endpoint:
        return True
    family = pattern[:-2] if pattern.endswith(".*") else pattern
    return "." not in family and endpoint.startswith(family + ".")


@dataclass
class Verdict:
    latency: float = 0.0
    status: int | None = None
    retry_after: int | None = None
    reset: bool = False


class _Rule:
    def __init__(self, spec: dict, now: float):
        self.spec = dict(spec)
        self.started = now
        self.seen = 0
        self.remaining = spec.get("count")

    def expired(self, now: float) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return True
        window = self.spec.get("windowSeconds")
        return window is not None and now >= self.started + window

    def fires(self, now: float) -> bool:
        if self.expired(now):
            return False
        rate = self.spec.get("rate")
        if rate is not None:
            self.seen += 1
            if math.floor(self.seen * rate) == math.floor((self.seen - 1) * rate):
                return False
        if self.remaining is not None:
            self.remaining -= 1
        return True

    def retry_after(self, now: float) -> int | None:
        if "retryAfter" in self.spec:
            return self.spec["retryAfter"]
        window = self.spec.get("windowSeconds")
        if window is not None:
            return max(1, math.ceil(self.started + window - now))
        return 1 if self.spec.get("status") == 429 else None

    def describe(self, now: float) -> dict:
        out = dict(self.spec)
        if self.remaining is not None:
            out["count"] = self.remaining
        if "windowSeconds" in self.spec:
            out["windowSeconds"] = round(max(0.0, self.started + self.spec["windowSeconds"] - now), 3)
        return out


class FaultEngine:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._rules: list[_Rule] = []
        self._outage: dict | None = None
        self._outage_started = 0.0
        self._throttle: dict | None = None
        self._windows: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ configuration

    def configure(self, faults: dict) -> None:
        """Replace every fault with ``faults`` (the validated scenario ``faults`` object)."""
        now = self._clock()
        self._rules = [_Rule(r, now) for r in faults.get("rules", [])]
        self.set_outage(faults.get("outage"))
        self._throttle = copy.deepcopy(faults.get("sharepointUserThrottle"))
        self._windows.clear()

    def add_rule(self, rule: dict) -> None:
        self._rules.append(_Rule(rule, self._clock()))

    def set_outage(self, outage: dict | None) -> None:
        self._outage = copy.deepcopy(outage)
        self._outage_started = self._clock()

    def set_user_throttle(self, throttle: dict | None) -> None:
        self._throttle = copy.deepcopy(throttle)
        self._windows.clear()

    def snapshot(self) -> dict:
        now = self._clock()
        self._rules = [r for r in self._rules if not r.expired(now)]
        return {"rules": [r.describe(now) for r in self._rules], "outage": self.outage(),
                "sharepointUserThrottle": copy.deepcopy(self._throttle)}

    # ------------------------------------------------------------------ decisions

    def outage(self) -> dict | None:
        if self._outage is None:
            return None
        seconds = self._outage.get("seconds")
        now = self._clock()
        if seconds is not None and now >= self._outage_started + seconds:
            self._outage = None
            return None
        out = dict(self._outage)
        if seconds is not None:
            out["seconds"] = round(self._outage_started + seconds - now, 3)
        return out

    def decide(self, endpoint: str) -> Verdict:
        outage = self.outage()
        if outage and outage["mode"] == "reset":
            return Verdict(reset=True)
        if outage and outage["mode"] == "503":
            return Verdict(status=503, retry_after=outage.get("retryAfter"))
        now = self._clock()
        verdict = Verdict()
        for rule in self._rules:
            if not endpoint_matches(rule.spec["endpoint"], endpoint) or not rule.fires(now):
                continue
            verdict.latency = max(verdict.latency, rule.spec.get("latencyMs", 0) / 1000.0)
            if verdict.status is None and not verdict.reset:
                if rule.spec.get("action") == "reset":
                    verdict.reset = True
                elif "status" in rule.spec:
                    verdict.status = rule.spec["status"]
                    verdict.retry_after = rule.retry_after(now)
        return verdict

    def throttle_user(self, upn: str) -> int | None:
        """Retry-After seconds when this SharePoint account is over its request budget, else None."""
        t = self._throttle
        if not t or (t.get("users") and upn.lower() not in {u.lower() for u in t["users"]}):
            return None
        now = self._clock()
        window = self._windows.setdefault(upn.lower(), [now, 0])
        if now >= window[0] + t["windowSeconds"]:
            window[0], window[1] = now, 0
        window[1] += 1
        if window[1] <= t["limit"]:
            return None
        return t.get("retryAfter", max(1, math.ceil(window[0] + t["windowSeconds"] - now)))


class Counters:
    def __init__(self):
        self._data: dict[str, dict] = defaultdict(lambda: {"requests": 0, "byStatus": defaultdict(int),
                                                          "faults": 0})

    def hit(self, endpoint: str) -> None:
        self._data[endpoint]["requests"] += 1

    def status(self, endpoint: str, status: int | str, *, fault: bool = False) -> None:
        entry = self._data[endpoint]
        entry["byStatus"][str(status)] += 1
        if fault:
            entry["faults"] += 1

    def snapshot(self) -> dict:
        return {name: {"requests": e["requests"], "byStatus": dict(e["byStatus"]), "faults": e["faults"]}
                for name, e in sorted(self._data.items())}

    def clear(self) -> None:
        self._data.clear()
