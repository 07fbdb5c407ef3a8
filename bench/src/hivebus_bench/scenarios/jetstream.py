"""The core with its state in JetStream buckets (``state=jetstream``, what ``hivebus up`` runs).

It runs on a nats-server of its own, with its own agents and delegator.

Its floor is one compare-and-set write to a bucket; every other figure has an in-memory twin
measured the same way, so the ratio between them is what durability costs.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hivebus.server import EmbeddedServer

from ..harness import Harness, latency, mib, payload_cycles
from ..plan import ALL
from ..processes import Child, CoreProcess, Process
from ..stream_writes import StreamWrites, writes_per_call

__all__ = ["jetstream_scenarios"]

SETTLE_S = 0.2
"""Between phases, before the server's count is read: a write that follows a reply lands."""


async def jetstream_scenarios(h: Harness) -> None:
    """The same core with its state in JetStream buckets, on a server of its own.

    Same plugins, logs, population and samples as the in-memory core, so each figure's
    ratio to its in-memory twin is what durability costs. Its own agents and delegator
    (on that server); everything it started is stopped before the floor is measured again.
    """
    p = h.plan
    fig = h.figures
    js: dict[str, Any] = {}
    server = EmbeddedServer(port=0, data_dir=h.fleet.workdir / "jetstream")
    started: list[Process] = []
    writes: StreamWrites | None = None
    try:
        async with h.rec.scenario("jetstream_state") as details:
            server.start()
            url = server.url
            client = await h.fleet.child(
                "floor-client-jetstream", "hivebus_bench.floor", "client", url
            )
            started.append(client)
            kv_seq = await h.measure(
                client, {"cmd": "kv", "count": p.floor_sequential, "warmup": p.warmup}
            )
            kv_conc = await h.measure(
                client,
                {
                    "cmd": "kv",
                    "count": p.floor_concurrent,
                    "inflight": p.inflight,
                    "warmup": p.warmup,
                },
            )
            js["floor"] = {
                "kv_write": {"sequential": latency(kv_seq), "concurrent": latency(kv_conc)}
            }
            await h.fleet.stop(client)
            started.remove(client)

            core = await h.start_core("core-jetstream", ALL, url=url, state="jetstream")
            started.append(core)
            await asyncio.sleep(0.5)
            js["startup"] = {
                "core_to_serving_ms": round(core.started_ms, 1),
                "core_event_loop": core.event_loop,
            }
            js["memory"] = {"core_rss_idle_mib": mib(core.memory_kib().get("VmRSS"))}
            workers: list[Child] = []
            for role in ("agents", "delegator"):
                worker = await h.fleet.child(
                    f"{role}-jetstream", "hivebus_bench.workers", role, url
                )
                started.append(worker)
                workers.append(worker)
            writes = await StreamWrites.connect(url)
            agents, delegator = workers
            await jetstream_figures(h, js, core, agents, delegator, writes)
            details.update(js)
    finally:
        if writes is not None:
            with contextlib.suppress(Exception):
                await writes.close()
        for process in reversed(started):
            with contextlib.suppress(Exception):
                await h.fleet.stop(process)
        server.stop()
        h.core = None
        fig["jetstream"] = js


async def jetstream_figures(
    h: Harness,
    js: dict[str, Any],
    core: CoreProcess,
    agents: Child,
    delegator: Child,
    writes: StreamWrites,
) -> None:
    """Registration, bulk registration and delegation, as the in-memory core measured; and
    what the server stored for each delegation, completion and cycle (``writes``)."""
    p = h.plan
    seq = await h.measure(
        agents, {"cmd": "register", "first": 0, "count": p.registration_sequential}, core
    )
    js["registration"] = {"sequential": latency(seq)}
    await asyncio.sleep(0.3)
    before = core.memory_kib().get("VmRSS", 0)
    bulk = await h.measure(
        agents,
        {
            "cmd": "register",
            "first": p.registration_sequential,
            "count": p.agents - p.registration_sequential,
            "inflight": p.inflight,
        },
        core,
    )
    await asyncio.sleep(0.5)
    after = core.memory_kib().get("VmRSS", 0)
    js["registration"]["concurrent"] = latency(bulk)
    js["registration"]["registered"] = p.registration_sequential + bulk["count"]
    js["memory"].update(
        core_rss_after_bulk_mib=mib(after),
        per_agent_kib=round((after - before) / bulk["count"], 3) if bulk["count"] else None,
    )
    # Kept as measured: a phase that fails leaves the ones before it in the report.
    delegation: dict[str, Any] = {"agents": p.agents}
    js["delegation"] = delegation
    async with h.profiled(core, "jetstream"):
        sequential = await h.measure(
            delegator,
            {"cmd": "delegate", "count": p.delegation_sequential, "warmup": p.warmup},
            core,
        )
        delegation["sequential"] = latency(sequential, "delegate_ms")
        # Delegations kept, then completed: what each of the two costs in writes, apart.
        stored: dict[str, Any] = {}
        js["writes"] = stored
        mark = await _settled(writes)
        concurrent = await h.measure(
            delegator,
            {
                "cmd": "delegate",
                "count": p.delegation_concurrent,
                "inflight": p.inflight,
                "complete": False,
            },
            core,
        )
        delegation["concurrent"] = latency(concurrent, "delegate_ms")
        now = await _settled(writes)
        stored["delegation"] = writes_per_call(mark, now, concurrent["count"])
        done = await h.measure(delegator, {"cmd": "complete_pending", "inflight": p.inflight}, core)
        delegation["complete_concurrent"] = latency(done)
        mark, now = now, await _settled(writes)
        stored["completion"] = writes_per_call(mark, now, done["count"])
        cycles = await h.measure(
            delegator,
            {"cmd": "delegate", "count": p.cycles, "inflight": p.inflight, "warmup": p.warmup},
            core,
        )
        delegation["cycles"] = latency(cycles)
        mark, now = now, await _settled(writes)
        stored["cycle"] = writes_per_call(mark, now, cycles["count"] + p.warmup)
    carrying = await h.measure(delegator, payload_cycles(p), core)
    delegation["cycles_payload"] = {**latency(carrying), "payload_kib": p.payload_kib}
    # Flat, for the ratios, the goals and older readers of ``writes_per_delegation``.
    for what in ("delegation", "completion", "cycle"):
        js[f"writes_per_{what}"] = stored[what]["per_call"]
    js["memory"]["core_rss_peak_mib"] = mib(core.memory_kib().get("VmHWM"))


async def _settled(writes: StreamWrites) -> dict[str, int]:
    """The streams' sequences once writes the core makes after its replies have landed."""
    await asyncio.sleep(SETTLE_S)
    return await writes.sequences()
