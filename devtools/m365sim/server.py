"""The one HTTPS server: TLS from a CA generated at start (trustme), routing by ``Host`` header to the
simulated services, fault injection, counters; plus :class:`Simulator` for running it in-process.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import tempfile
import threading
from pathlib import Path

import trustme
from aiohttp import web

from . import faults
from . import scenario as scenario_mod
from .control import ControlApi, SimulatorControl
from .entra import EntraService
from .graph import GraphService
from .keyvault import KeyVaultService
from .sharepoint import SharePointService
from .state import SimState
from .webutil import text_response

log = logging.getLogger(__name__)

LOGIN_HOSTS = ("login.microsoftonline.com",)
GRAPH_HOSTS = ("graph.microsoft.com",)
CERT_NAMES = ("login.microsoftonline.com", "graph.microsoft.com", "*.sharepoint.com", "*.vault.azure.net",
              "vault.azure.net", "localhost", "127.0.0.1")


def make_tls(state_dir: Path) -> tuple[ssl.SSLContext, Path]:
    """A fresh CA and server certificate; the CA's PEM is written to ``<state_dir>/ca.pem``."""
    ca = trustme.CA(organization_name="m365sim local CA")
    cert = ca.issue_cert(*CERT_NAMES, common_name="login.microsoftonline.com")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    state_dir.mkdir(parents=True, exist_ok=True)
    ca_path = state_dir / "ca.pem"
    tmp = state_dir / f".ca.pem.{os.getpid()}"
    ca.cert_pem.write_to_path(str(tmp))
    os.replace(tmp, ca_path)
    return ctx, ca_path


class SimServer:
    """The aiohttp application and its listening socket (runs on the current event loop)."""

    def __init__(self, scenario: dict, *, host: str = "127.0.0.1", port: int = 0, state_dir: Path):
        self.state = SimState(scenario)
        self.host = host
        self.port = port
        self.state_dir = Path(state_dir)
        self.ssl_context, self.ca_path = make_tls(self.state_dir)
        self.services = {"entra": EntraService(self.state), "graph": GraphService(self.state),
                         "sharepoint": SharePointService(self.state), "keyvault": KeyVaultService(self.state)}
        self.control = ControlApi(self.state, info=self.info, refuse=self.refuse)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def info(self) -> dict:
        return {"endpoint": self.endpoint, "caPath": str(self.ca_path)}

    def service_for(self, host: str):
        if host in LOGIN_HOSTS:
            return self.services["entra"]
        if host in GRAPH_HOSTS:
            return self.services["graph"]
        if host.endswith(".sharepoint.com"):
            return self.services["sharepoint"]
        if host.endswith(".vault.azure.net"):
            return self.services["keyvault"]
        return None

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/_sim" or request.path.startswith("/_sim/"):
            return await self.control.handle(request)
        host = request.host.rsplit(":", 1)[0].lower().rstrip(".") if request.host else ""
        service = self.service_for(host)
        if service is None:
            return text_response(f"m365sim: no service for host {host!r}", 421)
        endpoint = service.endpoint(request)
        counters = self.state.counters
        counters.hit(endpoint)
        verdict = self.state.faults.decide(endpoint)
        if verdict.latency:
            await asyncio.sleep(verdict.latency)
        if verdict.reset:
            counters.status(endpoint, "reset", fault=True)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError()
        if verdict.status:
            counters.status(endpoint, verdict.status, fault=True)
            return service.fault_response(request, verdict.status, verdict.retry_after)
        if verdict.hostile:
            counters.status(endpoint, "hostile." + verdict.hostile["kind"], fault=True)
            return await faults.respond(request, endpoint, verdict.hostile)
        try:
            response = await service.handle(request)
        except Exception:
            log.exception("m365sim: %s %s failed", request.method, request.url)
            counters.status(endpoint, 500)
            return text_response("m365sim internal error", 500)
        counters.status(endpoint, response.status)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s%s -> %s [%s]", request.method, host, request.path_qs, response.status, endpoint)
        return response

    async def start(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await self._listen()
        (self.state_dir / "state.json").write_text(json.dumps(dict(self.info(), pid=os.getpid())))

    async def _listen(self) -> None:
        self._site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context,
                                 reuse_address=True, backlog=512)
        await self._site.start()
        self.port = self._site.port

    def refuse(self, seconds: float) -> None:
        """Close the port (connections refused) for ``seconds``, dropping open connections."""
        asyncio.ensure_future(self._refuse(seconds))

    async def _refuse(self, seconds: float) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
        for conn in list(self._runner.server.connections if self._runner.server else []):
            conn.force_close()
        await asyncio.sleep(seconds)
        if self._runner is not None and self._site is None:
            await self._listen()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class Simulator:
    """The simulator in a background thread, for tests and the local host.

    ::

        sim = Simulator(DEMO_SCENARIO, port=0, state_dir=tmp_path).start()
        sim.endpoint      # "127.0.0.1:54321"
        sim.ca_path       # tmp_path / "ca.pem"
        sim.control.add_fault("entra.token", status=429, retryAfter=1, count=1)
        sim.settings_env()  # app settings for the product (M365_CLOUD=local, ...)
        sim.stop()
    """

    def __init__(self, scenario: str | Path | dict = scenario_mod.DEMO_SCENARIO, *, port: int = 0,
                 host: str = "127.0.0.1", state_dir: str | Path | None = None):
        self.scenario = scenario_mod.load(scenario)
        self.host = host
        self._port = port
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="m365sim-"))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: SimServer | None = None
        self._control: SimulatorControl | None = None

    def start(self, timeout: float = 30.0) -> "Simulator":
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = SimServer(self.scenario, host=self.host, port=self._port, state_dir=self.state_dir)
                loop.run_until_complete(self._server.start())
            except BaseException as exc:  # surfaced to the caller of start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._server.stop())
                loop.close()

        self._thread = threading.Thread(target=run, name="m365sim", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("m365sim did not start in time")
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
            self._thread = None

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def endpoint(self) -> str:
        """``host:port`` for the ``LOCAL_CLOUD_ENDPOINT`` setting."""
        return self._server.endpoint

    @property
    def ca_path(self) -> Path:
        return self._server.ca_path

    @property
    def control(self) -> SimulatorControl:
        if self._control is None:
            self._control = SimulatorControl(self.endpoint, self.ca_path)
        return self._control

    def settings_env(self) -> dict[str, str]:
        return settings_env(self.scenario, self.endpoint, self.ca_path)


def settings_env(scenario: dict, endpoint: str, ca_path: str | Path) -> dict[str, str]:
    """The app settings that point the product at a simulator (see ``shared/config.py``)."""
    op = scenario_mod.Directory(scenario).operator()
    env = {"M365_CLOUD": "local", "LOCAL_CLOUD_ENDPOINT": endpoint, "LOCAL_CLOUD_CA_BUNDLE": str(ca_path)}
    if op["app"]:
        env.update({"AZURE_TENANT_ID": op["app"].get("homeTenant") or "", "AZURE_CLIENT_ID": op["app"]["clientId"],
                    "AZURE_CLIENT_SECRET": op["app"]["secrets"][0]})
    if op["vault"]:
        env["KEY_VAULT_URI"] = f"https://{op['vault']['name']}.vault.azure.net/"
    if op["publicClient"]:
        env["M365_CLIENT_ID"] = op["publicClient"]["clientId"]
    return env


async def serve(scenario: dict, *, host: str, port: int, state_dir: Path, announce=print) -> None:
    """Run until SIGINT/SIGTERM (the ``python -m devtools.m365sim`` entry point)."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = SimServer(scenario, host=host, port=port, state_dir=state_dir)
    await server.start()
    announce(f"m365sim listening on https://{server.endpoint} (CA: {server.ca_path})")
    announce("app settings: " + json.dumps(settings_env(scenario, server.endpoint, server.ca_path)))
    await stop.wait()
    await server.stop()
    announce("m365sim stopped")
