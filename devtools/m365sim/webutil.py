"""Small helpers shared by the simulated services."""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from aiohttp import web

Handler = Callable[..., Awaitable[web.StreamResponse]]


def dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def json_response(body: Any, status: int = 200, headers: dict | None = None,
                  content_type: str = "application/json; charset=utf-8") -> web.Response:
    h = {"Content-Type": content_type, "Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
    if headers:
        h.update(headers)
    return web.Response(body=dumps(body).encode(), status=status, headers=h)


def text_response(text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8",
                  headers: dict | None = None) -> web.Response:
    h = {"Content-Type": content_type}
    if headers:
        h.update(headers)
    return web.Response(body=text.encode(), status=status, headers=h)


def new_id() -> str:
    return str(uuid.uuid4())


def utc_iso(ts: float | None = None, *, micro: bool = False) -> str:
    dt = datetime.fromtimestamp(ts, timezone.utc) if ts is not None else datetime.now(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class Routes:
    """A tiny (method, regex) → handler table; regex groups become keyword arguments."""

    def __init__(self):
        self._routes: list[tuple[frozenset[str], re.Pattern, Handler]] = []

    def add(self, methods: str, pattern: str, handler: Handler) -> None:
        self._routes.append((frozenset(methods.split()), re.compile(pattern, re.IGNORECASE), handler))

    def match(self, method: str, path: str) -> tuple[Handler | None, dict, bool]:
        """(handler, groups, path_known). ``path_known`` without a handler means 405."""
        known = False
        for methods, regex, handler in self._routes:
            m = regex.fullmatch(path)
            if m:
                known = True
                if method in methods:
                    return handler, m.groupdict(), True
        return None, {}, known
