"""Where Azurite's CPU goes per batch validation: a V8 CPU profile of Azurite (Node's inspector,
Chrome DevTools Protocol) taken during a small job and during a large one, printed by function as
milliseconds per validation, largest growth first.

Why: the batch scenario's per-profile time grows with the job while the host's CPU per validation
stays flat, so the growth is in Azurite; this names the function. (It named Azurite's queue
garbage collection: ``QueueGCManager`` deletes the extents of deleted messages every 60 s, one
``findAndRemove`` each, and LokiJS rebuilds the extents index after each removal, so a run costs
in proportion to the square of the messages deleted since the last one; a short job finishes
between two runs, a long one pays for every run in its time.)

    python -m devtools.bench.azurite_profile [--profiles 4000] [--small 500] [--interval-us 500]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import threading
from typing import Any

from devtools.azurite import free_port

#: Functions whose inclusive time is the queue GC's extent deletion (printed on their own line).
GC_FUNCTION = "deleteExtents MemoryExtentStore.js"


def _frame(node: dict) -> str:
    call = node["callFrame"]
    return f'{call["functionName"] or "(anonymous)"} {call["url"].rsplit("/", 1)[-1]}'


def inclusive_ms(profile: dict) -> tuple[dict[str, float], float]:
    """(milliseconds per function, each sample counted once per function on its stack; busy
    milliseconds in all) of a ``Profiler.stop`` profile: samples of ``(idle)`` are not busy."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    parent = {child: node["id"] for node in profile["nodes"] for child in node.get("children", ())}
    # timeDeltas[i] is the time before sample i: the time a sample stands for is the next delta
    deltas = profile.get("timeDeltas") or [0] * len(profile["samples"])
    spans = [*deltas[1:], 0]
    per_node: collections.Counter = collections.Counter()
    for node_id, micros in zip(profile["samples"], spans):
        per_node[node_id] += micros
    out: collections.Counter = collections.Counter()
    busy = 0.0
    for node_id, micros in per_node.items():
        if _frame(nodes[node_id]).startswith("(idle)"):
            continue
        busy += micros
        seen, current = set(), node_id
        while current is not None:
            name = _frame(nodes[current])
            if name not in seen:
                out[name] += micros
                seen.add(name)
            current = parent.get(current)
    return {name: micros / 1000 for name, micros in out.items()}, busy / 1000


class Inspector:
    """A CDP session with a Node process (aiohttp's websocket client on a thread of its own)."""

    def __init__(self, port: int):
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="cdp", daemon=True).start()
        self._next = 0
        self._ws = self._run(self._connect(port))

    def _run(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(300)

    async def _connect(self, port: int):
        import aiohttp

        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as r:
            url = (await r.json())[0]["webSocketDebuggerUrl"]
        return await self._session.ws_connect(url, max_msg_size=0)

    async def _call(self, method: str, params: dict) -> dict:
        self._next += 1
        await self._ws.send_str(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            message = json.loads((await self._ws.receive()).data)
            if message.get("id") == self._next:
                return message.get("result") or {}

    def call(self, method: str, **params) -> dict:
        return self._run(self._call(method, params))

    def close(self) -> None:
        async def close():
            await self._ws.close()
            await self._session.close()
        self._run(close())
        self._loop.call_soon_threadsafe(self._loop.stop)


def measure(*, profiles: int = 4000, small: int = 500, interval_us: int = 500, out=print) -> dict:
    from devtools.bench import jobs
    from devtools.bench.stack import running_stack

    port = free_port()
    with running_stack(azurite_inspect_port=port) as stack:
        inspector = Inspector(port)
        try:
            inspector.call("Profiler.enable")
            inspector.call("Profiler.setSamplingInterval", interval=interval_us)
            ids = jobs.create_profiles(stack["api"], stack["url"], jobs.TENANT, profiles, out=out)
            runs: dict[int, tuple[dict[str, float], float]] = {}
            with jobs.OutcomeConsumer(stack["azurite"].connection_string):
                jobs.measure(stack, profiles=small, ids=ids, out=out)  # warms the host and Azurite's JIT up
                for size in (small, profiles):
                    inspector.call("Profiler.start")
                    jobs.measure(stack, profiles=size, ids=ids, out=out)
                    functions, busy = inclusive_ms(inspector.call("Profiler.stop")["profile"])
                    runs[size] = ({k: v / size for k, v in functions.items()}, busy / size)
        finally:
            inspector.close()
    (few, few_busy), (many, many_busy) = runs[small], runs[profiles]
    out(f"Azurite busy CPU per validation (profiled): {few_busy:.1f} ms ({small} profiles), "
        f"{many_busy:.1f} ms ({profiles})")
    out(f"queue GC extent deletion ({GC_FUNCTION}): {few.get(GC_FUNCTION, 0):.2f} -> "
        f"{many.get(GC_FUNCTION, 0):.2f} ms per validation")
    out(f"{'ms/validation':>14} {'':>8}  function (inclusive), largest growth first")
    for name in sorted(set(few) | set(many), key=lambda k: few.get(k, 0) - many.get(k, 0))[:25]:
        out(f"{few.get(name, 0):14.2f} {many.get(name, 0):8.2f}  {name}")
    return {"small": small, "profiles": profiles, "busy_ms": [few_busy, many_busy],
            "gc_extent_delete_ms": [few.get(GC_FUNCTION, 0), many.get(GC_FUNCTION, 0)]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=4000)
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--interval-us", type=int, default=500, help="V8 sampling interval")
    args = parser.parse_args(argv)
    measure(profiles=args.profiles, small=args.small, interval_us=args.interval_us)


if __name__ == "__main__":
    main()
