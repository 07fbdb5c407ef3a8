"""Ratios: each figure over its floor (or over its own baseline), read from the figures alone.

A ratio, unlike a latency, hardly depends on how busy the shared machine was: the floor was
measured on the same machine in the same run. Computed from ``figures`` alone, so medians of
several reports (``combine``) re-derive them.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["RATIOS", "durable_floor", "figure", "ratios"]


def figure(tree: dict[str, Any], path: str) -> float | None:
    """The number at ``path`` (dotted keys) in the figures, or None."""
    node: Any = tree
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if isinstance(node, bool) or not isinstance(node, int | float) or math.isnan(node):
        return None
    return float(node)


def _ratio(figures: dict[str, Any], top: str, bottom: str) -> float | None:
    a, b = figure(figures, top), figure(figures, bottom)
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


RATIOS: dict[str, tuple[str, str]] = {
    "registration_p50_vs_echo_p50": ("registration.sequential.p50", "floor.echo.sequential.p50"),
    "registration_p99_vs_echo_p99": ("registration.sequential.p99", "floor.echo.sequential.p99"),
    "registration_rate_vs_echo_rate": (
        "registration.concurrent.per_s",
        "floor.echo.concurrent.per_s",
    ),
    "delegation_p50_vs_relay_p50": ("delegation.sequential.p50", "floor.relay.sequential.p50"),
    "delegation_p99_vs_relay_p99": ("delegation.sequential.p99", "floor.relay.sequential.p99"),
    "delegation_small_p50_vs_relay_p50": ("scale.small.p50", "floor.relay.sequential.p50"),
    "delegation_inflight_p50_vs_relay_inflight_p50": (
        "delegation.concurrent.p50",
        "floor.relay.concurrent.p50",
    ),
    "delegation_rate_vs_relay_rate": (
        "delegation.concurrent.per_s",
        "floor.relay.concurrent.per_s",
    ),
    "cycles_rate_vs_relay_rate": ("delegation.cycles.per_s", "floor.relay.concurrent.per_s"),
    "payload_cycles_rate_vs_cycles_rate": (
        "delegation.cycles_payload.per_s",
        "delegation.cycles.per_s",
    ),
    "payload_cycle_cpu_vs_cycle_cpu": (
        "delegation.cycles_payload.cpu_us_per_call",
        "delegation.cycles.cpu_us_per_call",
    ),
    "relay_inline_rate_vs_relay_rate": (
        "floor.relay_inline.concurrent.per_s",
        "floor.relay.concurrent.per_s",
    ),
    "registration_cpu_vs_echo_cpu": (
        "registration.concurrent.cpu_us_per_call",
        "floor.echo.concurrent.cpu_us_per_call",
    ),
    "delegation_cpu_vs_relay_cpu": (
        "delegation.concurrent.cpu_us_per_call",
        "floor.relay.concurrent.cpu_us_per_call",
    ),
    "scale_large_vs_small_p50": ("scale.large.p50", "scale.small.p50"),
    "delegation_rate_vs_relay_inline_rate": (
        "delegation.concurrent.per_s",
        "floor.relay_inline.concurrent.per_s",
    ),
    "plugins_all_vs_none_p50": ("plugins.all.p50", "plugins.none.p50"),
    "plugins_all_vs_none_cycle_cpu": (
        "delegation.cycles.cpu_us_per_call",
        "variants.no_plugins.cycles.cpu_us_per_call",
    ),
    "registration_no_plugins_p50_vs_echo_p50": (
        "variants.no_plugins.registration.p50",
        "floor.echo.sequential.p50",
    ),
    "registration_lean_p50_vs_echo_p50": (
        "variants.no_plugins_log_warning.registration.p50",
        "floor.echo.sequential.p50",
    ),
    "lean_p50_vs_relay_p50": (
        "variants.no_plugins_log_warning.sequential.p50",
        "floor.relay.sequential.p50",
    ),
    "no_plugins_rate_vs_relay_rate": (
        "variants.no_plugins.concurrent.per_s",
        "floor.relay.concurrent.per_s",
    ),
    "lean_rate_vs_relay_rate": (
        "variants.no_plugins_log_warning.concurrent.per_s",
        "floor.relay.concurrent.per_s",
    ),
    "lean_cycles_rate_vs_relay_rate": (
        "variants.no_plugins_log_warning.cycles.per_s",
        "floor.relay.concurrent.per_s",
    ),
    "log_info_vs_warning_cycle_cpu": (
        "variants.no_plugins.cycles.cpu_us_per_call",
        "variants.no_plugins_log_warning.cycles.cpu_us_per_call",
    ),
    "plugins_none_p50_vs_relay_p50": ("plugins.none.p50", "floor.relay.sequential.p50"),
    "startup_vs_probe": ("startup.core_to_serving_ms", "startup_probe.ready_ms"),
    "core_rss_idle_vs_probe": ("memory.core_rss_idle_mib", "startup_probe.rss_mib"),
    "relay_uvloop_p50_vs_relay_p50": (
        "floor_uvloop.relay.sequential.p50",
        "floor.relay.sequential.p50",
    ),
    # JetStream state against the same figure in memory: what durability costs.
    "jetstream_delegation_p50_vs_memory_p50": (
        "jetstream.delegation.sequential.p50",
        "delegation.sequential.p50",
    ),
    "jetstream_delegation_p99_vs_memory_p99": (
        "jetstream.delegation.sequential.p99",
        "delegation.sequential.p99",
    ),
    "jetstream_delegation_rate_vs_memory_rate": (
        "jetstream.delegation.concurrent.per_s",
        "delegation.concurrent.per_s",
    ),
    "jetstream_delegation_inflight_p50_vs_memory": (
        "jetstream.delegation.concurrent.p50",
        "delegation.concurrent.p50",
    ),
    "jetstream_cycles_rate_vs_memory_rate": (
        "jetstream.delegation.cycles.per_s",
        "delegation.cycles.per_s",
    ),
    "jetstream_delegation_cpu_vs_memory_cpu": (
        "jetstream.delegation.concurrent.cpu_us_per_call",
        "delegation.concurrent.cpu_us_per_call",
    ),
    "jetstream_cycle_cpu_vs_memory_cpu": (
        "jetstream.delegation.cycles.cpu_us_per_call",
        "delegation.cycles.cpu_us_per_call",
    ),
    "jetstream_payload_cycles_rate_vs_memory_rate": (
        "jetstream.delegation.cycles_payload.per_s",
        "delegation.cycles_payload.per_s",
    ),
    "jetstream_payload_cycle_cpu_vs_memory_cpu": (
        "jetstream.delegation.cycles_payload.cpu_us_per_call",
        "delegation.cycles_payload.cpu_us_per_call",
    ),
    "jetstream_registration_p50_vs_memory_p50": (
        "jetstream.registration.sequential.p50",
        "registration.sequential.p50",
    ),
    "jetstream_registration_p99_vs_memory_p99": (
        "jetstream.registration.sequential.p99",
        "registration.sequential.p99",
    ),
    "jetstream_registration_rate_vs_memory_rate": (
        "jetstream.registration.concurrent.per_s",
        "registration.concurrent.per_s",
    ),
    "jetstream_startup_vs_memory_startup": (
        "jetstream.startup.core_to_serving_ms",
        "startup.core_to_serving_ms",
    ),
    "jetstream_rss_idle_vs_memory_rss_idle": (
        "jetstream.memory.core_rss_idle_mib",
        "memory.core_rss_idle_mib",
    ),
    # ... and against its floors: the relay, and one compare-and-set write to a bucket.
    "jetstream_delegation_p50_vs_relay_p50": (
        "jetstream.delegation.sequential.p50",
        "floor.relay.sequential.p50",
    ),
    "jetstream_registration_p50_vs_kv_write_p50": (
        "jetstream.registration.sequential.p50",
        "jetstream.floor.kv_write.sequential.p50",
    ),
    "jetstream_kv_write_p50_vs_echo_p50": (
        "jetstream.floor.kv_write.sequential.p50",
        "floor.echo.sequential.p50",
    ),
    # The core's default loop (uvloop, where installed) against asyncio, both without plugins.
    "no_plugins_loop_vs_asyncio_cycle_cpu": (
        "variants.no_plugins.cycles.cpu_us_per_call",
        "variants.no_plugins_asyncio.cycles.cpu_us_per_call",
    ),
    "no_plugins_loop_vs_asyncio_cycles_rate": (
        "variants.no_plugins.cycles.per_s",
        "variants.no_plugins_asyncio.cycles.per_s",
    ),
    "no_plugins_loop_vs_asyncio_p50": (
        "variants.no_plugins.sequential.p50",
        "variants.no_plugins_asyncio.sequential.p50",
    ),
    # The headline (issue 11): the durable cycle and delegation against the bare relay.
    "jetstream_cycles_rate_vs_relay_rate": (
        "jetstream.delegation.cycles.per_s",
        "floor.relay.concurrent.per_s",
    ),
    "jetstream_delegation_inflight_p50_vs_relay_inflight_p50": (
        "jetstream.delegation.concurrent.p50",
        "floor.relay.concurrent.p50",
    ),
    "jetstream_delegation_rate_vs_relay_rate": (
        "jetstream.delegation.concurrent.per_s",
        "floor.relay.concurrent.per_s",
    ),
}
"""Each ratio: a figure over its floor (or over its own baseline), read from ``figures``."""


def durable_floor(figures: dict[str, Any]) -> float | None:
    """What a delegation with JetStream state cannot go below, in ms: the two-hop relay plus
    one compare-and-set write per write a delegation stores, one after another.

    The writes are the server's count over the delegations with 256 in flight
    (``jetstream.writes_per_delegation``), so the floor follows the core when it stores less;
    a core that overlaps its writes can go below it.
    """
    relay = figure(figures, "floor.relay.sequential.p50")
    write = figure(figures, "jetstream.floor.kv_write.sequential.p50")
    writes = figure(figures, "jetstream.writes_per_delegation")
    if relay is None or write is None or writes is None:
        return None
    return round(relay + writes * write, 4)


def ratios(figures: dict[str, Any]) -> dict[str, float]:
    """Every ratio the figures allow, computed from the figures alone."""
    found: dict[str, float] = {}
    floor = durable_floor(figures)
    js_p50 = figure(figures, "jetstream.delegation.sequential.p50")
    if floor and js_p50 is not None:
        found["jetstream_delegation_p50_vs_durable_floor"] = round(js_p50 / floor, 3)
    pairs = dict(RATIOS)
    for variant in figures.get("variants", {}):
        if variant.startswith("only_"):
            # Each plugin alone against no plugins: what that one plugin costs.
            base = "variants.no_plugins"
            pairs[f"{variant}_p50_vs_none"] = (
                f"variants.{variant}.sequential.p50",
                f"{base}.sequential.p50",
            )
            pairs[f"{variant}_cycle_cpu_vs_none"] = (
                f"variants.{variant}.cycles.cpu_us_per_call",
                f"{base}.cycles.cpu_us_per_call",
            )
    for name, (top, bottom) in pairs.items():
        value = _ratio(figures, top, bottom)
        if value is not None:
            found[name] = value
    return found
