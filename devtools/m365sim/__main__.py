"""``python -m devtools.m365sim --scenario devtools/m365sim/scenarios/demo.yaml --port 8443 --state-dir .local/m365sim``"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from .scenario import DEMO_SCENARIO, ScenarioError, load
from .server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.m365sim", description=__doc__)
    parser.add_argument("--scenario", default=str(DEMO_SCENARIO), help="scenario file (YAML or JSON)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    parser.add_argument("--state-dir", default=".local/m365sim", help="where ca.pem and state.json are written")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        scenario = load(args.scenario)
    except ScenarioError as exc:
        print(f"m365sim: invalid scenario: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(scenario, host=args.host, port=args.port, state_dir=Path(args.state_dir),
                          announce=lambda line: print(line, flush=True)))
    except OSError as exc:
        print(f"m365sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
