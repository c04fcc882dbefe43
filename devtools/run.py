"""``make run``: Azurite, the Microsoft 365 simulator (demo tenants) and the local Functions host.

Ctrl-C (or SIGTERM) stops every child this started, the host first so in-flight work finishes.
Options: ``--scenario PATH`` (simulator scenario), ``--port`` (host port, default from settings).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from devtools import azurite

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
DEMO_SCENARIO = ROOT / "devtools" / "m365sim" / "scenarios" / "demo.yaml"


def _wait_port(address: tuple[str, int], proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}; see {LOCAL / 'logs'}")
        try:
            socket.create_connection(address, timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not start listening on {address[0]}:{address[1]} within {timeout}s")


def _settings() -> dict:
    path = ROOT / "local.settings.json"
    if not path.exists():
        shutil.copy(ROOT / "local.settings.sample.json", path)
        print(f"Created {path.name} from local.settings.sample.json")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__)
    parser.add_argument("--scenario", type=Path, default=DEMO_SCENARIO)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)

    settings = _settings()
    values = settings["Values"]
    port = args.port or int(settings.get("Host", {}).get("LocalHttpPort", 7071))
    sim_host, _, sim_port = values["LOCAL_CLOUD_ENDPOINT"].rpartition(":")
    logs = LOCAL / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen] = []
    store = None

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        print("Starting Azurite (data in .local/azurite) ...", flush=True)
        store = azurite.start(ports=(10000, 10001, 10002), location=LOCAL / "azurite", log=logs / "azurite.log")

        print(f"Starting the Microsoft 365 simulator with {args.scenario.relative_to(ROOT) if args.scenario.is_relative_to(ROOT) else args.scenario} ...", flush=True)
        sim = subprocess.Popen(
            [sys.executable, "-m", "devtools.m365sim", "--scenario", str(args.scenario), "--port", sim_port,
             "--host", sim_host or "127.0.0.1", "--state-dir", str(LOCAL / "m365sim")],
            cwd=ROOT, stdout=open(logs / "m365sim.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        children.append(sim)
        _wait_port((sim_host or "127.0.0.1", int(sim_port)), sim, "The simulator")

        print(f"Starting the local Functions host on http://127.0.0.1:{port} ...", flush=True)
        host = subprocess.Popen([sys.executable, "-m", "devtools.local_host", "--port", str(port),
                                 "--settings", str(ROOT / "local.settings.json")],
                                cwd=ROOT, start_new_session=True)
        children.insert(0, host)
        _wait_port(("127.0.0.1", port), host, "The local host")

        key = values.get("LOCAL_FUNCTION_KEY", "local-dev-key")
        tenant = "11111111-1111-4111-8111-111111111111"
        print(f"""
Ready.
  Health:        http://127.0.0.1:{port}/api/health
  Admin page:    http://127.0.0.1:{port}/api/admin?code={key}
  OpenAPI:       http://127.0.0.1:{port}/api/openapi.json
  Simulator:     https://{values['LOCAL_CLOUD_ENDPOINT']}/_sim/scenario  (CA: {values['LOCAL_CLOUD_CA_BUNDLE']})
  Azurite:       blob :10000  queue :10001  table :10002
Try:
  curl -s http://127.0.0.1:{port}/api/health
  curl -s -X POST -H 'x-functions-key: {key}' -H 'content-type: application/json' \\
    http://127.0.0.1:{port}/api/tenants/{tenant}/validation-tests \\
    -d '{{"name":"try","username":"mfa@contoso.onmicrosoft.com","password":"Demo-Passw0rd!"}}'
Ctrl-C stops everything.
""", flush=True)
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        print("A child process exited; stopping the others.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        return 0
    finally:
        # A second Ctrl-C (or make/timeout passing the signal on) must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in children:  # host first: in-flight invocations finish before the rest stops
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
        if store:
            store.stop()


if __name__ == "__main__":
    sys.exit(main())
