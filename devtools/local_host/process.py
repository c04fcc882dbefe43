"""Run ``python -m devtools.local_host`` as a subprocess (what e2e tests use)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping, Sequence

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Host listening on "  # printed by the CLI once everything runs


class LocalHostProcess:
    """A running local host process; its combined stdout/stderr is collected in ``output``."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.url: str | None = None
        self._lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="local-host-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.append(line)
            if self.url is None and line.startswith(READY_LINE):
                self.url = line[len(READY_LINE):].strip()
                self._ready.set()
        self._ready.set()

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def wait_ready(self, timeout: float) -> str:
        """Wait for the ready line and a 200 from ``/admin/host/ping``; return the base URL."""
        deadline = time.monotonic() + timeout
        if not self._ready.wait(timeout) or self.url is None:
            self.stop()
            raise RuntimeError(f"the local host did not start within {timeout}s:\n{self.output}")
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/admin/host/ping", timeout=2) as response:
                    if response.status == 200:
                        return self.url
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"the local host at {self.url} did not answer:\n{self.output}")
            time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (graceful stop), then SIGKILL after ``timeout``; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        return self.process.returncode


def start_local_host_process(*, app: str = "function_app:app", env: Mapping[str, str] | None = None,
                             port: int | None = 0, settings: str | os.PathLike | None = None,
                             host_json: str | os.PathLike | None = None, cwd: str | os.PathLike = ROOT,
                             extra_args: Sequence[str] = (), timeout: float = 30.0) -> LocalHostProcess:
    """Start the CLI with ``env`` over this process's environment (so overrides beat
    ``local.settings.json``); return once it answers HTTP.

    :param settings: ``--settings`` (default: the CLI's ``local.settings.json`` in ``cwd``).
    :param host_json: ``--host-json`` (default: ``host.json`` in ``cwd``).
    """
    args = [sys.executable, "-m", "devtools.local_host", "--app", app, *extra_args]
    if port is not None:  # None: Host.LocalHttpPort from the settings file, else 7071
        args += ["--port", str(port)]
    if settings is not None:
        args += ["--settings", str(settings)]
    if host_json is not None:
        args += ["--host-json", str(host_json)]
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    process = subprocess.Popen(args, cwd=cwd, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    host = LocalHostProcess(process)
    host.wait_ready(timeout)
    return host
