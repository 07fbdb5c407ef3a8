"""Delegate-and-complete cycles with real SDK agents, all in one process: CPU per cycle.

`hivebus bench` completes each task from the delegator after the delegation's reply, so an
agent's report never meets its own acceptance on the way. Real agents that answer at once do
meet it: the completion arrives while the core is still storing the acceptance. This measures
that path, with the core, four SDK agents and a `HiveClient` in one process on an embedded
nats-server, so the CPU time of the whole exchange is one figure (process time per cycle),
steadier on a shared machine than wall time.

    uv run python benchmarks/sdk_cycle.py                     # JetStream state, 4,000 cycles
    uv run python benchmarks/sdk_cycle.py --state memory --cycles 10000
    PLUGINS=performance,audit uv run python benchmarks/sdk_cycle.py
    uv run python benchmarks/sdk_cycle.py --payload-kib 32   # what a prompt with context weighs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from hivebus import Agent, Core, HivebusConfig, HiveClient, Offer
from hivebus.server import EmbeddedServer
from hivebus_bench.workers import payload_of

IN_FLIGHT = 64


async def handle(task: Offer) -> int:
    return 1


async def cycles(state: str, count: int, payload_kib: int = 0) -> tuple[float, float]:
    """CPU microseconds per cycle and cycles per second, after a warm-up."""
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedServer(port=0, data_dir=Path(tmp) / "nats", jetstream=state != "memory")
        server.start()
        try:
            plugins = [p for p in os.environ.get("PLUGINS", "").split(",") if p]
            config = HivebusConfig.load(
                nats_url=server.url,
                state=state,
                plugin_autoload=False,
                plugins=plugins,
                log_level="WARNING",
                max_concurrent_tasks=100_000,
                data_dir=Path(tmp) / "hivebus",
            )
            core = Core(config)
            await core.start()
            agents = [Agent(f"a{i}", ["x"], handle, config=config, max_tasks=50) for i in range(4)]
            for agent in agents:
                await agent.start()
            try:
                async with HiveClient(config=config) as hive:
                    gate = asyncio.Semaphore(IN_FLIGHT)
                    payload = payload_of(payload_kib)

                    async def one(task_id: str) -> None:
                        async with gate:
                            await hive.delegate("t", ["x"], task_id=task_id, payload=payload)

                    async def run(prefix: str, n: int) -> None:
                        await asyncio.gather(*(one(f"{prefix}{i}") for i in range(n)))
                        # The core announces no "all done"; its live count is the figure.
                        while core.orchestrator.live_count:  # noqa: ASYNC110
                            await asyncio.sleep(0.005)

                    await run("warm-", 300)
                    cpu, wall = time.process_time(), time.perf_counter()
                    await run("t-", count)
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            finally:
                for agent in agents:
                    await agent.stop()
                await core.stop()
        finally:
            server.stop()
    return cpu / count * 1e6, count / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", choices=["jetstream", "memory"], default="jetstream")
    parser.add_argument("--cycles", type=int, default=4000)
    parser.add_argument("--payload-kib", type=int, default=0, help="each task's payload")
    args = parser.parse_args()
    cpu_us, per_s = asyncio.run(cycles(args.state, args.cycles, args.payload_kib))
    with_payload = f", {args.payload_kib} KiB payloads" if args.payload_kib else ""
    print(
        f"{args.state}{with_payload}: {cpu_us:.0f} us CPU per cycle (client, agents and core), "
        f"{per_s:.0f}/s"
    )


if __name__ == "__main__":
    main()
