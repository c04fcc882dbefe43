"""Runtime faults (latency, 429/5xx with Retry-After, connection resets, outages, per-user SharePoint
throttling, hostile bodies) and the per-endpoint request counters.

Hostile bodies (:data:`HOSTILE_KINDS`, served by :func:`respond` in place of the endpoint's answer):
``billionLaughs`` (XML whose internal entities expand to ~10^9 "lol"s, as a SOAP envelope),
``huge`` (a 50 MB body, ``megabytes`` to change it, with its Content-Length, streamed), ``invalidUtf8``
(bytes that are not UTF-8 under ``charset=utf-8``, in the endpoint's media type), ``trickle`` (a
declared body sent one byte per ``intervalMs``, default 1000). Each rule has ``endpoint``, ``kind``,
optional ``status`` (default 200), ``count`` and ``windowSeconds``, like the other rules.

Endpoint names are stable: ``entra.discovery``, ``entra.jwks``, ``entra.userrealm``, ``entra.token``,
``sharepoint.sts`` (extSTS.srf), ``sharepoint.signin`` (wsignin1.0 / idcrl.svc), ``sharepoint.api``,
``graph``, ``keyvault``. A rule's ``endpoint`` may also be ``*``, ``entra``/``entra.*`` or
``sharepoint``/``sharepoint.*``.
"""
from __future__ import annotations

import asyncio
import copy
import math
import time
from collections import defaultdict
from dataclasses import dataclass

from aiohttp import web

ENDPOINTS = ("entra.discovery", "entra.jwks", "entra.userrealm", "entra.token", "sharepoint.sts",
             "sharepoint.signin", "sharepoint.api", "graph", "keyvault")


def endpoint_matches(pattern: str, endpoint: str) -> bool:
    if pattern == "*" or pattern == endpoint:
        return True
    family = pattern[:-2] if pattern.endswith(".*") else pattern
    return "." not in family and endpoint.startswith(family + ".")


HOSTILE_KINDS = ("billionLaughs", "huge", "invalidUtf8", "trickle")
_HOSTILE_KEYS = {"endpoint", "kind", "status", "count", "windowSeconds", "megabytes", "intervalMs", "bytes"}


@dataclass
class Verdict:
    latency: float = 0.0
    status: int | None = None
    retry_after: int | None = None
    reset: bool = False
    #: a hostile-body rule (its spec) to answer with :func:`respond` instead of the endpoint
    hostile: dict | None = None


def validate_hostile(spec) -> dict:
    """The hostile-body rule ``spec``, checked; :raises ValueError: naming the field."""
    if not isinstance(spec, dict):
        raise ValueError("hostile: expected an object {endpoint, kind, ...}")
    unknown = set(spec) - _HOSTILE_KEYS
    if unknown:
        raise ValueError(f"hostile: unknown field(s) {sorted(unknown)}")
    endpoint = spec.get("endpoint")
    if not isinstance(endpoint, str) or not any(endpoint_matches(endpoint, e) for e in ENDPOINTS):
        raise ValueError(f"hostile.endpoint: not an endpoint or pattern of {ENDPOINTS}: {endpoint!r}")
    if spec.get("kind") not in HOSTILE_KINDS:
        raise ValueError(f"hostile.kind: one of {HOSTILE_KINDS}, got {spec.get('kind')!r}")
    limits = {"status": (200, 599), "count": (1, 10**6), "windowSeconds": (0.001, 86400),
              "megabytes": (1, 1024), "intervalMs": (1, 60000), "bytes": (1, 10**6)}
    for name, (low, high) in limits.items():
        value = spec.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not low <= value <= high):
            raise ValueError(f"hostile.{name}: a number from {low} to {high}, got {value!r}")
    return dict(spec)


def billion_laughs() -> bytes:
    """The classic XML bomb (10 levels of 10 references) inside a SOAP 1.2 envelope: ~3 GB expanded."""
    entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, 10)]
    return ('<?xml version="1.0" encoding="utf-8"?><!DOCTYPE S:Envelope [' + "".join(entities) + "]>"
            '<S:Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope"><S:Body>&lol9;</S:Body></S:Envelope>'
            ).encode("utf-8")


#: bytes that no UTF-8 decoder accepts: a lone continuation byte, an overlong "/", a surrogate, 0xFF
INVALID_UTF8 = b"\x80\xc0\xaf\xed\xa0\x80\xff\xfe"


def _media_type(endpoint: str) -> str:
    if endpoint == "sharepoint.sts":
        return "application/soap+xml; charset=utf-8"
    if endpoint in ("sharepoint.signin",):
        return "text/html; charset=utf-8"
    return "application/json; charset=utf-8"


async def respond(request: web.Request, endpoint: str, spec: dict) -> web.StreamResponse:
    """Answer ``request`` with the hostile body ``spec`` describes (see the module docstring)."""
    status, kind = int(spec.get("status", 200)), spec["kind"]
    headers = {"Content-Type": _media_type(endpoint)}
    if kind == "billionLaughs":
        headers["Content-Type"] = "application/soap+xml; charset=utf-8"
        return web.Response(status=status, body=billion_laughs(), headers=headers)
    if kind == "invalidUtf8":
        body = (b'{"error": "' + INVALID_UTF8 + b'", "access_token": "' + INVALID_UTF8 + b'"}'
                if "json" in headers["Content-Type"] else b"<S:Envelope>" + INVALID_UTF8 + b"</S:Envelope>")
        return web.Response(status=status, body=body, headers=headers)
    size = int(spec.get("megabytes", 50) * 1024 * 1024) if kind == "huge" else int(spec.get("bytes", 4096))
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = size
    await response.prepare(request)
    try:
        if kind == "huge":
            chunk = b" " * (256 * 1024)
            for offset in range(0, size, len(chunk)):
                await response.write(chunk[: size - offset])
        else:  # trickle: one byte per interval until the client gives up
            interval = spec.get("intervalMs", 1000) / 1000.0
            for _ in range(size):
                await response.write(b" ")
                await asyncio.sleep(interval)
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        pass  # the client hung up, as it should
    return response


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
        self._hostile: list[_Rule] = []

    # ------------------------------------------------------------------ configuration

    def configure(self, faults: dict) -> None:
        """Replace every fault with ``faults`` (the validated scenario ``faults`` object)."""
        now = self._clock()
        self._rules = [_Rule(r, now) for r in faults.get("rules", [])]
        self.set_outage(faults.get("outage"))
        self._throttle = copy.deepcopy(faults.get("sharepointUserThrottle"))
        self._windows.clear()
        self._hostile = []

    def add_rule(self, rule: dict) -> None:
        self._rules.append(_Rule(rule, self._clock()))

    def add_hostile(self, spec: dict) -> None:
        """Add a hostile-body rule (checked by :func:`validate_hostile`)."""
        self._hostile.append(_Rule(validate_hostile(spec), self._clock()))

    def clear_hostile(self) -> None:
        self._hostile = []

    def set_outage(self, outage: dict | None) -> None:
        self._outage = copy.deepcopy(outage)
        self._outage_started = self._clock()

    def set_user_throttle(self, throttle: dict | None) -> None:
        self._throttle = copy.deepcopy(throttle)
        self._windows.clear()

    def snapshot(self) -> dict:
        now = self._clock()
        self._rules = [r for r in self._rules if not r.expired(now)]
        self._hostile = [r for r in self._hostile if not r.expired(now)]
        return {"rules": [r.describe(now) for r in self._rules], "outage": self.outage(),
                "sharepointUserThrottle": copy.deepcopy(self._throttle),
                "hostile": [r.describe(now) for r in self._hostile]}

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
        if verdict.status is None and not verdict.reset:
            verdict.hostile = next((dict(r.spec) for r in self._hostile
                                    if endpoint_matches(r.spec["endpoint"], endpoint) and r.fires(now)), None)
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
                                                          "faults": 0, "byName": defaultdict(int)})

    def hit(self, endpoint: str, *, name: str | None = None) -> None:
        """Count a request; ``name`` (the object a Key Vault operation is on) is counted under
        ``byName`` too, so a test sharing the simulator can tell its own object's requests."""
        self._data[endpoint]["requests"] += 1
        if name:
            self._data[endpoint]["byName"][name] += 1

    def status(self, endpoint: str, status: int | str, *, fault: bool = False) -> None:
        entry = self._data[endpoint]
        entry["byStatus"][str(status)] += 1
        if fault:
            entry["faults"] += 1

    def snapshot(self) -> dict:
        return {name: {"requests": e["requests"], "byStatus": dict(e["byStatus"]), "faults": e["faults"],
                       **({"byName": dict(e["byName"])} if e["byName"] else {})}
                for name, e in sorted(self._data.items())}

    def clear(self) -> None:
        self._data.clear()
