"""The in-memory core, scenario after scenario; each builds on the one before.

Start-up and idle memory, registration one at a time (the core's memory with the first 100
agents), bulk registration up to the large population and memory per agent, heartbeats,
delegation at that population, then back down to 100 agents for the same delegations again.
"""

from __future__ import annotations

import asyncio

from hivebus.config import HivebusConfig

from ..harness import Harness, latency, mib, payload_cycles
from ..plan import ALL, plugin_names
from ..processes import Child, CoreProcess
from ..stats import median
from .variants import core_variants

__all__ = ["core_scenarios"]


async def core_scenarios(h: Harness) -> None:
    """From start-up to the variants; a failed scenario ends the run of those after it."""
    p = h.plan
    rec = h.rec
    fig = h.figures
    core: CoreProcess | None = None
    agents: Child | None = None
    delegator: Child | None = None
    async with rec.scenario("system_initialization") as details:
        samples: list[float] = []
        for i in range(p.startup_runs):
            if core is not None:
                await h.fleet.stop(core)
            core = await h.start_core(f"core-{i}", plugins=ALL)
            samples.append(core.started_ms)
        await asyncio.sleep(0.5)
        idle = core.memory_kib() if core is not None else {}
        fig["startup"]["core_to_serving_ms"] = round(median(samples), 1)
        fig["startup"]["core_to_serving_ms_samples"] = [round(s, 1) for s in samples]
        fig["startup"]["core_event_loop"] = core.event_loop if core is not None else None
        fig["memory"] = {"core_rss_idle_mib": mib(idle.get("VmRSS"))}
        details.update(fig["startup"], core_rss_idle_mib=fig["memory"]["core_rss_idle_mib"])
    if rec.failed or core is None:
        return  # each scenario builds on the one before

    async with rec.scenario("agent_registration") as details:
        agents = await h.fleet.child("agents", "hivebus_bench.workers", "agents", h.url)
        delegator = await h.fleet.child("delegator", "hivebus_bench.workers", "delegator", h.url)
        # One at a time: the first 100 (the legacy default population), then the rest.
        first = await h.measure(
            agents, {"cmd": "register", "first": 0, "count": p.small_agents}, core
        )
        await asyncio.sleep(0.3)
        rss_small = core.memory_kib().get("VmRSS")
        rest = await h.measure(
            agents,
            {
                "cmd": "register",
                "first": p.small_agents,
                "count": p.registration_sequential - p.small_agents,
            },
            core,
        )
        run = {**rest, "latencies_ms": first["latencies_ms"] + rest["latencies_ms"]}
        fig["registration"] = {"sequential": latency(run)}
        fig["memory"]["core_rss_small_population_mib"] = mib(rss_small)
        details.update(fig["registration"])
    if rec.failed or agents is None or delegator is None:
        return

    async with rec.scenario("concurrent_agents") as details:
        # Per agent by difference between two populations, both past the first
        # registrations (which also warm up code paths and caches).
        await asyncio.sleep(0.3)
        before = core.memory_kib().get("VmRSS", 0)
        registered = p.registration_sequential
        bulk = p.agents - registered
        run = await h.measure(
            agents,
            {"cmd": "register", "first": registered, "count": bulk, "inflight": p.inflight},
            core,
        )
        await asyncio.sleep(0.5)
        after = core.memory_kib().get("VmRSS", 0)
        fig["registration"]["concurrent"] = latency(run)
        fig["registration"]["registered"] = registered + run["count"]
        fig["registration"]["requested"] = p.agents
        fig["memory"].update(
            core_rss_before_bulk_mib=mib(before),
            core_rss_after_bulk_mib=mib(after),
            agents_added=run["count"],
            per_agent_kib=round((after - before) / run["count"], 3) if run["count"] else None,
        )
        # Every agent heartbeats once: at the default interval, what liveness costs.
        beats = await h.measure(
            agents,
            {"cmd": "heartbeat", "first": 0, "count": p.agents, "inflight": p.inflight},
            core,
        )
        interval = float(HivebusConfig.model_fields["heartbeat_interval_s"].default)
        heartbeats = latency(beats)
        cpu = heartbeats.get("cpu_us_per_call")
        heartbeats["default_interval_s"] = interval
        if cpu is not None:
            # Percent of one CPU the core spends on heartbeats from the whole population.
            heartbeats["cpu_percent_at_default_interval"] = round(
                p.agents / interval * cpu / 1e4, 2
            )
        fig["heartbeats"] = heartbeats
        details.update(
            registration=fig["registration"]["concurrent"],
            memory=fig["memory"],
            heartbeats=heartbeats,
        )

    if rec.failed:
        return
    async with rec.scenario("task_delegation") as details:
        async with h.profiled(core, "memory"):
            seq = await h.measure(
                delegator,
                {"cmd": "delegate", "count": p.delegation_sequential, "warmup": p.warmup},
                core,
            )
            conc = await h.measure(
                delegator,
                {
                    "cmd": "delegate",
                    "count": p.delegation_concurrent,
                    "inflight": p.inflight,
                    "complete": False,
                },
                core,
            )
            done = await h.measure(
                delegator, {"cmd": "complete_pending", "inflight": p.inflight}, core
            )
            cycles = await h.measure(
                delegator,
                {"cmd": "delegate", "count": p.cycles, "inflight": p.inflight, "warmup": p.warmup},
                core,
            )
        carrying = await h.measure(delegator, payload_cycles(p), core)
        fig["delegation"] = {
            "agents": p.agents,
            "sequential": latency(seq, "delegate_ms"),
            "concurrent": latency(conc, "delegate_ms"),
            "complete_concurrent": latency(done),
            "cycles": latency(cycles),
            "cycles_payload": {**latency(carrying), "payload_kib": p.payload_kib},
        }
        fig["memory"]["core_rss_peak_mib"] = mib(core.memory_kib().get("VmHWM"))
        details.update(fig["delegation"])

    if rec.failed:
        return
    async with rec.scenario("scale") as details:
        # Down to the small population, and the same sequential delegations again.
        await h.measure(
            agents,
            {
                "cmd": "deregister",
                "first": p.small_agents,
                "count": p.agents - p.small_agents,
                "inflight": p.inflight,
            },
        )
        small = await h.measure(
            delegator,
            {"cmd": "delegate", "count": p.delegation_sequential, "warmup": p.warmup},
            core,
        )
        fig["scale"] = {
            "small_agents": p.small_agents,
            "small": latency(small, "delegate_ms"),
            "large_agents": p.agents,
            "large": fig["delegation"]["sequential"],
        }
        fig["plugins"] = {"names": plugin_names(), "all": fig["scale"]["small"]}
        fig["variants"] = {}
        details.update(fig["scale"])

    if rec.failed:
        return
    await core_variants(h, core, agents, delegator)
