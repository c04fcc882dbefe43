"""The app's HTTP triggers called directly with ``func.HttpRequest`` (as the Azure samples test
them), on services wired by :func:`shared.bootstrap.bootstrap` over the fakes of ``tests/fakes.py``.
"""
from __future__ import annotations

import asyncio
import inspect
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import azure.functions as func

from shared import bootstrap
from shared.config import Settings
from shared.contract.routes import BY_ID
from tests.fakes import (FakeCertificateStore, FakeExplanationQueue, FakeHistory, FakeSignInDiagnostics, FakeJobRepository, FakePoolRepository, FakeProfileRepository, FakePublisher,
                         FakeSecretStore, FakeWebhookEventLog, FakeWorkQueue)
from tests.fakes_validation import FakeAccountProbe

SETTINGS = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "M365_CLOUD": "local",
                              "KEY_VAULT_URI": "https://demo.vault.azure.net/", "WEBHOOK_PORTALS": "p1=*"})


@lru_cache(maxsize=1)
def app_functions() -> tuple:
    """The app's functions, as the local host reads them (a second plain ``get_functions()`` in
    one process would refuse every name as a duplicate)."""
    import function_app
    from devtools.local_host.indexing import functions_of

    return tuple(functions_of(function_app.app))


def _triggers() -> dict[str, Any]:
    out = {}
    for fn in app_functions():
        user = fn.get_user_function()
        if getattr(user, "operation_id", None):
            out[user.operation_id] = user
    return out


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class InProcessApp:
    """Fresh fakes, wired by the real composition root and installed as the process's services."""

    profiles: FakeProfileRepository = field(default_factory=FakeProfileRepository)
    secrets: FakeSecretStore = field(default_factory=FakeSecretStore)
    history: FakeHistory = field(default_factory=FakeHistory)
    publisher: FakePublisher = field(default_factory=FakePublisher)
    probe: FakeAccountProbe = field(default_factory=FakeAccountProbe)
    jobs: FakeJobRepository = field(default_factory=FakeJobRepository)
    work: FakeWorkQueue = field(default_factory=FakeWorkQueue)
    pool: FakePoolRepository = field(default_factory=FakePoolRepository)
    webhook_events: FakeWebhookEventLog = field(default_factory=FakeWebhookEventLog)
    certificates: FakeCertificateStore = field(default_factory=FakeCertificateStore)
    explanation_queue: FakeExplanationQueue = field(default_factory=FakeExplanationQueue)
    diagnostics: FakeSignInDiagnostics = field(default_factory=FakeSignInDiagnostics)

    def __post_init__(self):
        self.services = bootstrap.bootstrap(
            SETTINGS, profiles=self.profiles, secrets=self.secrets, history=self.history, publisher=self.publisher,
            probe=self.probe, jobs=self.jobs, work=self.work, pool=self.pool, webhook_events=self.webhook_events,
            certificates=self.certificates, explanation_queue=self.explanation_queue, diagnostics=self.diagnostics)
        self.triggers = _triggers()

    def call(self, operation_id: str, *, body: Any = None, raw: bytes | None = None,
             headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
             **route_params: str) -> Answer:
        """Call the operation's trigger; ``body`` is sent as JSON, ``raw`` as it is."""
        op = BY_ID[operation_id]
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        url = "http://localhost/api/" + op.route.format(**route_params)
        if params:
            url += "?" + urlencode(params)
        req = func.HttpRequest(method=op.method, url=url, headers={"content-type": "application/json",
                                                                    **(headers or {})},
                               params=params or {}, route_params=route_params, body=data)
        previous = bootstrap._services
        bootstrap._services = self.services
        try:
            resp = self.triggers[operation_id](req)
            if inspect.isawaitable(resp):  # an async trigger, as the worker's event loop runs it
                resp = asyncio.run(resp)
        finally:
            bootstrap._services = previous
        headers = {"Content-Type": f"{resp.mimetype}; charset={resp.charset}", **dict(resp.headers)}
        return Answer(resp.status_code, headers, resp.get_body())

    def run(self, name: str, *args: Any) -> Any:
        """Call the app's function ``name`` (a queue or timer trigger) as the worker would: an
        async one on an event loop of its own."""
        fn = next(f.get_user_function() for f in app_functions() if f.get_user_function().__name__ == name)
        previous, bootstrap._services = bootstrap._services, self.services
        try:
            out = fn(*args)
            return asyncio.run(out) if inspect.isawaitable(out) else out
        finally:
            bootstrap._services = previous
