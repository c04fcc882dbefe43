"""The parts of ``host.json`` that the local host honours, with the Functions host's defaults.

Only ``extensions.http.routePrefix`` and ``customHeaders``, ``extensions.queues`` and the top-level
``functions`` list are read; everything else (logging, extension bundle, function timeout) is accepted and ignored.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")


def parse_timespan(value: str | int | float) -> float:
    """Seconds in a .NET ``TimeSpan`` string (``[d.]hh:mm:ss[.fff]``); numbers are taken as seconds.

    :raises ValueError: for any other shape.
    """
    if isinstance(value, (int, float)):
        return float(value)
    match = _TIMESPAN.match(value.strip())
    if not match:
        raise ValueError(f"not a TimeSpan (expected [d.]hh:mm:ss): {value!r}")
    days = int(match["days"] or 0)
    return days * 86400 + int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"])


@dataclass(frozen=True)
class QueuesOptions:
    """``extensions.queues``; defaults are the Storage Queues extension's (Consumption plan, 1 core)."""

    batch_size: int = 16
    new_batch_threshold: int | None = None  # None: batch_size // 2, as the host computes it
    visibility_timeout: float = 0.0  # delay before a failed message is visible again
    max_polling_interval: float = 60.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @property
    def effective_new_batch_threshold(self) -> int:
        return self.batch_size // 2 if self.new_batch_threshold is None else self.new_batch_threshold

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "QueuesOptions":
        kwargs: dict[str, Any] = {}
        if "batchSize" in raw:
            kwargs["batch_size"] = int(raw["batchSize"])
        if "newBatchThreshold" in raw:
            kwargs["new_batch_threshold"] = int(raw["newBatchThreshold"])
        if "visibilityTimeout" in raw:
            kwargs["visibility_timeout"] = parse_timespan(raw["visibilityTimeout"])
        if "maxPollingInterval" in raw:
            kwargs["max_polling_interval"] = parse_timespan(raw["maxPollingInterval"])
        if "maxDequeueCount" in raw:
            kwargs["max_dequeue_count"] = int(raw["maxDequeueCount"])
        if "messageEncoding" in raw:
            kwargs["message_encoding"] = str(raw["messageEncoding"]).lower()
        opts = cls(**kwargs)
        if not 1 <= opts.batch_size <= 32:
            raise ValueError(f"extensions.queues.batchSize must be 1..32, got {opts.batch_size}")
        if opts.max_dequeue_count < 1:
            raise ValueError("extensions.queues.maxDequeueCount must be at least 1")
        if opts.message_encoding not in ("base64", "none"):
            raise ValueError(f"extensions.queues.messageEncoding must be base64 or none, "
                             f"got {opts.message_encoding!r}")
        return opts


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueuesOptions = field(default_factory=QueuesOptions)
    functions: tuple[str, ...] | None = None  # host.json "functions": load only these
    #: ``extensions.http.customHeaders``: added to every HTTP answer, the host's own included
    custom_headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> "HostConfig":
        raw = raw or {}
        extensions = raw.get("extensions") or {}
        http = extensions.get("http") or {}
        prefix = str(http.get("routePrefix", "api")).strip("/")
        listed = raw.get("functions")
        headers = http.get("customHeaders") or {}
        if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError("extensions.http.customHeaders must be an object of header names to strings")
        return cls(route_prefix=prefix, custom_headers=dict(headers),
                   queues=QueuesOptions.from_dict(extensions.get("queues") or {}),
                   functions=tuple(listed) if listed is not None else None)

    @classmethod
    def from_file(cls, path: str | Path) -> "HostConfig":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
