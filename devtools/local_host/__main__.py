"""``python -m devtools.local_host``: run a FunctionApp locally, like ``func start``.

Settings come from ``local.settings.json`` (falling back to ``local.settings.sample.json``), whose
``Values`` are put into the environment before the app is imported (variables already set win).
Ctrl-C or SIGTERM stops gracefully.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from devtools.local_host.host import DEFAULT_GRACE, LocalHost
from devtools.local_host.host_config import HostConfig
from devtools.local_host.indexing import load_app
from devtools.local_host.queues import DEFAULT_MESSAGE_LEASE
from devtools.local_host.process import READY_LINE
from devtools.local_host.settings import apply_to_environ, read_local_settings

DEFAULT_PORT = 7071


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class DimensionsFormatter(logging.Formatter):
    """Appends a record's ``extra`` fields as ``{json}``: what Azure shows as customDimensions."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        line = super().format(record)
        dims = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        return f"{line} {json.dumps(dims, default=str, sort_keys=True)}" if dims else line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devtools.local_host", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument("--port", type=int, default=None,
                        help="HTTP port (default Host.LocalHttpPort, else 7071; 0 = a free port)")
    parser.add_argument("--settings", default="local.settings.json", help="local settings file")
    parser.add_argument("--host-json", default="host.json", help="host configuration file")
    parser.add_argument("--grace", type=float, default=DEFAULT_GRACE,
                        help="seconds in-flight invocations get to finish on shutdown")
    parser.add_argument("--message-lease", type=float, default=DEFAULT_MESSAGE_LEASE,
                        help="seconds a fetched queue message stays hidden while its function runs, renewed at "
                             "half (the real host: 600); a killed host's messages come back after it")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(DimensionsFormatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    log = logging.getLogger("devtools.local_host")
    local = read_local_settings(args.settings)
    apply_to_environ(local.values)
    if Path(args.host_json).exists():
        config = HostConfig.from_file(args.host_json)
    else:
        log.warning("%s not found: using the host's defaults", args.host_json)
        config = HostConfig()
    port = args.port if args.port is not None else (local.local_http_port or DEFAULT_PORT)

    stop_requested = threading.Event()

    def on_signal(*_: object) -> None:
        if stop_requested.is_set():  # a second Ctrl-C / SIGTERM: stop waiting
            print("Forced exit", file=sys.stderr, flush=True)
            os._exit(1)
        stop_requested.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)

    app = load_app(args.app)
    host = LocalHost(app, host_config=config, port=port, script_root=os.getcwd(), grace=args.grace,
                     app_spec=args.app, message_lease=args.message_lease)
    host.start()
    print(f"{READY_LINE}{host.url}\n\nFunctions:\n", flush=True)
    for line in host.describe():
        print(f"        {line}\n", flush=True)
    if host.function_errors:
        print(f"The following {len(host.function_errors)} functions are in error:", flush=True)
        for name, error in host.function_errors.items():
            print(f"        {name}: {error}", flush=True)
    stop_requested.wait()
    log.info("Stopping the host (grace %.1fs)", args.grace)
    try:
        clean = host.stop(args.grace)
    except TimeoutError:
        log.error("The host did not stop in time")
        clean = False
    if not clean:  # worker threads still run abandoned invocations: do not wait for them
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
