"""Token-endpoint throughput of the Microsoft 365 simulator.

``python -m devtools.bench.sim_tokens [--concurrency 32] [--seconds 5] [--in-process] [--client aiohttp|requests]``

Starts the simulator (a subprocess by default, so that client and server do not share a GIL), then
drives ``POST /{tenant}/oauth2/v2.0/token`` with N concurrent clients over keep-alive HTTPS
connections — first the client-credentials grant of the app's own identity, then the password grant
(ROPC) of a demo user — and prints requests/s and latency percentiles for each.
"""
from __future__ import annotations

import argparse
import asyncio
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
LOGIN_HOST = "login.microsoftonline.com"

GRANTS = {
    "client_credentials": ("00000000-0000-4000-8000-0000000000aa", {
        "grant_type": "client_credentials", "client_id": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
        "client_secret": "local-dev-client-secret", "scope": "https://vault.azure.net/.default"}),
    "password (ROPC)": ("11111111-1111-4111-8111-111111111111", {
        "grant_type": "password", "client_id": "1950a258-227b-4e31-a9cf-717495945fc2",
        "username": "admin@contoso.onmicrosoft.com", "password": "Demo-Passw0rd!",
        "scope": "https://graph.microsoft.com/.default openid profile offline_access", "client_info": "1"}),
}


class Result:
    def __init__(self, name: str):
        self.name = name
        self.latencies: list[float] = []
        self.errors = 0
        self.elapsed = 0.0

    def line(self) -> str:
        n = len(self.latencies)
        lat = sorted(self.latencies) or [0.0]
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
        return (f"{self.name:<20} {n / self.elapsed:8.0f} req/s   ok={n:<6} errors={self.errors:<4} "
                f"p50={p(0.50):6.1f} ms  p95={p(0.95):6.1f} ms  p99={p(0.99):6.1f} ms  "
                f"mean={statistics.fmean(lat) * 1000:6.1f} ms")


# ----------------------------------------------------------------------------- simulator

def start_subprocess(state_dir: Path) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "devtools.m365sim", "--port", "0", "--state-dir",
                             str(state_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.match(r"m365sim listening on https://(\S+) \(CA: (.+)\)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep draining its output
    return proc, match.group(1), match.group(2)


# ----------------------------------------------------------------------------- clients

async def run_aiohttp(endpoint: str, ca: str, name: str, tenant: str, form: dict, concurrency: int,
                      seconds: float) -> Result:
    import aiohttp

    ctx = ssl.create_default_context(cafile=ca)
    body = urlencode(form)
    url = f"https://{endpoint}/{tenant}/oauth2/v2.0/token"
    headers = {"Host": LOGIN_HOST, "Content-Type": "application/x-www-form-urlencoded"}
    result = Result(name)
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=ctx, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def warm():
            async with session.post(url, data=body, headers=headers, server_hostname=LOGIN_HOST) as r:
                await r.read()
        await asyncio.gather(*(warm() for _ in range(concurrency)))  # open the keep-alive connections
        deadline = time.perf_counter() + seconds

        async def worker():
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=headers, server_hostname=LOGIN_HOST) as r:
                    await r.read()
                    if r.status == 200:
                        result.latencies.append(time.perf_counter() - t0)
                    else:
                        result.errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed = time.perf_counter() - started
    return result


def run_requests(endpoint: str, ca: str, name: str, tenant: str, form: dict, concurrency: int,
                 seconds: float) -> Result:
    """The product's own session (shared.adapters.http_session) from ``concurrency`` threads."""
    from concurrent.futures import ThreadPoolExecutor

    sys.path.insert(0, str(ROOT))
    from shared.adapters.http_session import build_session
    from shared.config import Settings

    settings = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "M365_CLOUD": "local",
                                  "LOCAL_CLOUD_ENDPOINT": endpoint, "LOCAL_CLOUD_CA_BUNDLE": ca})
    session = build_session(settings, pool_maxsize=concurrency)
    url = f"https://{LOGIN_HOST}/{tenant}/oauth2/v2.0/token"
    result = Result(name)
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker():
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            r = session.post(url, data=form, timeout=30)
            with lock:
                if r.status_code == 200:
                    result.latencies.append(time.perf_counter() - t0)
                else:
                    result.errors += 1

    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(lambda: session.post(url, data=form, timeout=30)) for _ in range(concurrency)]:
            f.result()
        started = time.perf_counter()
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
        result.elapsed = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.sim_tokens", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-process", action="store_true", help="run the simulator in this process (a thread)")
    parser.add_argument("--client", choices=("aiohttp", "requests"), default="aiohttp",
                        help="aiohttp (asyncio) or the product's requests session from threads")
    args = parser.parse_args(argv)

    proc = sim = None
    state_dir = Path(tempfile.mkdtemp(prefix="m365sim-bench-"))
    if args.in_process:
        sys.path.insert(0, str(ROOT))
        from devtools.m365sim import Simulator

        sim = Simulator(state_dir=state_dir).start()
        endpoint, ca = sim.endpoint, str(sim.ca_path)
    else:
        proc, endpoint, ca = start_subprocess(state_dir)
    try:
        print(f"m365sim token endpoint at {endpoint} ({'in-process' if sim else 'subprocess'}), "
              f"{args.concurrency} concurrent clients ({args.client}, keep-alive), {args.seconds:g} s per grant")
        for name, (tenant, form) in GRANTS.items():
            if args.client == "aiohttp":
                result = asyncio.run(run_aiohttp(endpoint, ca, name, tenant, form, args.concurrency, args.seconds))
            else:
                result = run_requests(endpoint, ca, name, tenant, form, args.concurrency, args.seconds)
            print(result.line(), flush=True)
    finally:
        if sim is not None:
            sim.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
