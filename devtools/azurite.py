"""Start and stop Azurite (the npm package pinned in package.json) for ``make run`` and tests."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented; not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int
    process: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
                f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
                f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT};")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def azurite_binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if not found:
        raise RuntimeError("Azurite is not installed: run `npm ci` in the project folder")
    return found


def start(*, ports: tuple[int, int, int] | None = None, location: Path | None = None,
          log: Path | None = None, timeout: float = 30.0, inspect_port: int | None = None) -> Azurite:
    """Start Azurite; in memory unless ``location`` is given. Returns when all three ports answer.

    :param inspect_port: open Node's inspector on this port (``devtools.bench.azurite_profile`` takes
        CPU profiles of Azurite through it).
    """
    blob, queue, table = ports or (free_port(), free_port(), free_port())
    args = [azurite_binary(), "--blobHost", "127.0.0.1", "--blobPort", str(blob),
            "--queueHost", "127.0.0.1", "--queuePort", str(queue),
            "--tableHost", "127.0.0.1", "--tablePort", str(table),
            "--skipApiVersionCheck", "--disableTelemetry", "--loose"]
    if location is None:
        args.append("--inMemoryPersistence")
    else:
        location.mkdir(parents=True, exist_ok=True)
        args += ["--location", str(location)]
    out = open(log, "ab") if log else subprocess.DEVNULL
    env = None
    if inspect_port is not None:
        env = {**os.environ, "NODE_OPTIONS": f"--inspect=127.0.0.1:{inspect_port}"}
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    azurite = Azurite(blob, queue, table, proc)
    deadline = time.monotonic() + timeout
    for port in (blob, queue, table):
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Azurite exited with {proc.returncode} (ports {blob},{queue},{table})")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    azurite.stop()
                    raise RuntimeError(f"Azurite did not open port {port} within {timeout}s")
                time.sleep(0.1)
    return azurite
