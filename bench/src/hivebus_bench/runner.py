"""The scenarios, in order, against one nats-server; every process is stopped at the end.

1. the floor (echo and two-hop relay, bare nats-py), measured at the start and again at the end;
2. start-up: the embedded nats-server, and the core process from spawn to serving;
3. registration latency, one at a time (the core's memory with the first 100 agents);
4. bulk registration up to ``agents`` with 256 in flight, and the core's memory per agent;
5. delegation at ``agents``: one at a time, 256 in flight, and delegate+complete cycles;
6. scale: back down to 100 agents, the same sequential delegations again;
7. variants of the core, one after another: no plugins, then also logging at WARNING; each
   with the small-population delegations and delegate+complete cycles, so what plugins and
   per-task log lines cost shows by difference;
8. JetStream: a second nats-server, with JetStream, and a core keeping its state in key-value
   buckets there (``state=jetstream``, what ``hivebus up`` runs): its floor (one
   compare-and-set write), start-up, registration, and delegation at ``agents``, each beside
   the in-memory figure.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from hivebus.server import EmbeddedServer

from . import loops
from .harness import Harness
from .plan import BenchOptions, Plan
from .processes import Child, Fleet
from .profiling import Profiling
from .recorder import Recorder
from .scenarios.core import core_scenarios
from .scenarios.jetstream import jetstream_scenarios
from .scenarios.nats_floor import (
    floor_processes,
    jetstream_server_start,
    measure_floor,
    startup_probe,
)
from .stats import median_tree

__all__ = ["run", "run_bench"]


async def run_bench(options: BenchOptions) -> tuple[Plan, Recorder]:
    """Run every scenario; the recorder holds the results even when some failed."""
    plan = Plan.for_options(options)
    recorder = Recorder()
    profiling = None
    if options.profile is not None:
        profiling = Profiling(options.profile.resolve(), options.profiler)
    with tempfile.TemporaryDirectory(prefix="hivebus-bench-") as workdir:
        fleet = Fleet(Path(workdir))
        await run(Harness(plan, fleet, recorder, profiling))
    recorder.figures["plan"] = asdict(plan)
    if profiling is not None:
        recorder.figures["profile"] = profiling.report()
    return plan, recorder


async def run(h: Harness) -> None:
    """The scenarios in order; each needs the ones before it, and the floor is measured twice."""
    rec = h.rec
    fig = h.figures
    server = EmbeddedServer(port=0, jetstream=False)
    processes: dict[str, Child] | None = None
    try:
        async with rec.scenario("nats_floor") as details:
            started = time.perf_counter()
            server.start()
            server_ms = (time.perf_counter() - started) * 1000
            h.url = server.url
            fig["startup"] = {"nats_server_ms": round(server_ms, 1)}
            fig["startup"]["nats_server_jetstream_ms"] = jetstream_server_start()
            processes = await floor_processes(h, "asyncio")
            first = await measure_floor(h, processes)
            fig["floor_rounds"] = [first]
            fig["floor"] = first
            fig["startup_probe"] = await startup_probe(h)
            details.update(first=first, probe=fig["startup_probe"])
            if loops.uvloop_version() is not None:
                on_uvloop = await floor_processes(h, "uvloop")
                fig["floor_uvloop"] = await measure_floor(h, on_uvloop)
        if processes is None or rec.failed:
            return  # without a floor there is nothing to compare against
        await core_scenarios(h)
        if not rec.failed:
            await jetstream_scenarios(h)
        async with rec.scenario("nats_floor_again") as details:
            last = await measure_floor(h, processes)
            fig["floor_rounds"].append(last)
            fig["floor"] = median_tree(fig["floor_rounds"])
            details.update(last=last, combined=fig["floor"])
    finally:
        await h.fleet.close()
        server.stop()
