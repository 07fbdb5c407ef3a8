"""Cores after the main one, each with fewer plugins or quieter logs, one after another.

Each runs the small-population delegations and the delegate+complete cycles, so what plugins
and per-task log lines cost shows by difference with the main core.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..harness import Harness, latency, mib
from ..plan import variants
from ..processes import Child, CoreProcess

__all__ = ["VARIANT_CONCURRENT", "core_variants", "measure_variant"]

VARIANT_CONCURRENT = 2_000
"""Delegations with 256 in flight per variant core (each needs an agent of its own)."""


async def core_variants(h: Harness, core: CoreProcess, agents: Child, delegator: Child) -> None:
    """Stop the main core, then measure each variant with the same agents and delegator."""
    p = h.plan
    fig = h.figures
    async with h.rec.scenario("core_variants") as details:
        await h.fleet.stop(core)
        for variant, plugins, log_level, event_loop in variants(p.quick):
            fig["variants"][variant] = await measure_variant(
                h, variant, plugins, log_level, agents, delegator, event_loop
            )
        fig["plugins"]["none"] = fig["variants"]["no_plugins"]["sequential"]
        fig["startup"]["core_no_plugins_to_serving_ms"] = fig["variants"]["no_plugins"][
            "startup_ms"
        ]
        details.update(fig["variants"])


async def measure_variant(
    h: Harness,
    name: str,
    plugins: list[str],
    log_level: str | None,
    agents: Child,
    delegator: Child,
    event_loop: str | None = None,
) -> dict[str, Any]:
    """A core with fewer plugins (or quieter logs): what they cost shows by difference.

    It serves the small population for the sequential delegations, then one agent per
    delegation of the 256-in-flight phase (selection does not depend on the population).
    """
    p = h.plan
    core = await h.start_core(
        f"core-{name}", plugins=plugins, log_level=log_level, event_loop=event_loop
    )
    await asyncio.sleep(0.5)
    rss_idle = core.memory_kib().get("VmRSS")
    in_flight_count = min(p.delegation_concurrent, VARIANT_CONCURRENT)
    population = p.small_agents + max(in_flight_count, 2 * p.inflight)
    registration = await h.measure(
        agents, {"cmd": "register", "first": 0, "count": p.small_agents}, core
    )
    seq = await h.measure(
        delegator,
        {"cmd": "delegate", "count": p.delegation_sequential, "warmup": p.warmup},
        core,
    )
    await h.measure(
        agents,
        {
            "cmd": "register",
            "first": p.small_agents,
            "count": population - p.small_agents,
            "inflight": p.inflight,
        },
    )
    conc = await h.measure(
        delegator,
        {
            "cmd": "delegate",
            "count": in_flight_count,
            "inflight": p.inflight,
            "complete": False,
        },
        core,
    )
    await h.measure(delegator, {"cmd": "complete_pending", "inflight": p.inflight})
    cycles = await h.measure(
        delegator,
        {"cmd": "delegate", "count": p.cycles, "inflight": p.inflight, "warmup": p.warmup},
        core,
    )
    await h.fleet.stop(core)
    return {
        "plugins": plugins,
        "log_level": log_level or "default",
        "event_loop": core.event_loop,
        "startup_ms": round(core.started_ms, 1),
        "rss_idle_mib": mib(rss_idle),
        "registration": latency(registration),
        "sequential": latency(seq, "delegate_ms"),
        "concurrent": latency(conc, "delegate_ms"),
        "cycles": latency(cycles),
    }
