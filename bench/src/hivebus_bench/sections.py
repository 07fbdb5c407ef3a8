"""The table's sections for the in-memory core (``table.SECTIONS`` puts them in order).

Each row is a figure beside its floor (or its own baseline) and the ratio between them, so a
reader compares like with like without opening the JSON.
"""

from __future__ import annotations

from .rows import Row, Rows

__all__ = [
    "delegation",
    "floor",
    "heartbeats",
    "memory",
    "plugin_variants",
    "plugins",
    "registration",
    "scale",
    "startup",
    "uvloop",
]

ECHO_RATE = "floor.echo.concurrent.per_s"
RELAY_RATE = "floor.relay.concurrent.per_s"


def floor(rows: Rows) -> list[Row]:
    """Bare NATS: the figures everything else is compared with."""
    row = rows.row
    return [
        row("floor: echo p50 (one hop)", "floor.echo.sequential.p50", "ms"),
        row("floor: echo req/s, 256 in flight", ECHO_RATE, "/s"),
        row("floor: relay p50 (two hops)", "floor.relay.sequential.p50", "ms"),
        row("floor: relay req/s, 256 in flight", RELAY_RATE, "/s"),
        row(
            "floor: relay awaiting inline, req/s",
            "floor.relay_inline.concurrent.per_s",
            "/s",
            RELAY_RATE,
            "relay_inline_rate_vs_relay_rate",
        ),
    ]


def startup(rows: Rows) -> list[Row]:
    """The nats-server, and the core from spawn to serving."""
    row = rows.row
    return [
        row("nats-server start", "startup.nats_server_ms", "ms"),
        row("nats-server start, JetStream", "startup.nats_server_jetstream_ms", "ms"),
        row(
            "core: spawn to serving (plugins)",
            "startup.core_to_serving_ms",
            "ms",
            "startup_probe.ready_ms",
            "startup_vs_probe",
        ),
        row("core: spawn to serving (no plugins)", "startup.core_no_plugins_to_serving_ms", "ms"),
    ]


def registration(rows: Rows) -> list[Row]:
    """Registration one at a time and 256 in flight, beside the echo."""
    row = rows.row
    return [
        row(
            "registration p50",
            "registration.sequential.p50",
            "ms",
            "floor.echo.sequential.p50",
            "registration_p50_vs_echo_p50",
        ),
        row(
            "registration p99",
            "registration.sequential.p99",
            "ms",
            "floor.echo.sequential.p99",
            "registration_p99_vs_echo_p99",
        ),
        row(
            "registration p50, no plugins",
            "variants.no_plugins.registration.p50",
            "ms",
            "floor.echo.sequential.p50",
            "registration_no_plugins_p50_vs_echo_p50",
        ),
        row(
            "registration p50, no plugins, log WARNING",
            "variants.no_plugins_log_warning.registration.p50",
            "ms",
            "floor.echo.sequential.p50",
            "registration_lean_p50_vs_echo_p50",
        ),
        row(
            "registrations/s, 256 in flight",
            "registration.concurrent.per_s",
            "/s",
            ECHO_RATE,
            "registration_rate_vs_echo_rate",
        ),
        row(
            "core CPU per registration, 256 in flight",
            "registration.concurrent.cpu_us_per_call",
            "us",
            "floor.echo.concurrent.cpu_us_per_call",
            "registration_cpu_vs_echo_cpu",
        ),
    ]


def heartbeats(rows: Rows) -> list[Row]:
    """What liveness costs the core at the default heartbeat interval."""
    row = rows.row
    return [
        row("heartbeats/s, 256 in flight", "heartbeats.per_s", "/s"),
        row("core CPU per heartbeat", "heartbeats.cpu_us_per_call", "us"),
        row(
            f"core CPU on heartbeats, {rows.large} agents every {rows.interval} s",
            "heartbeats.cpu_percent_at_default_interval",
            "%",
        ),
    ]


def delegation(rows: Rows) -> list[Row]:
    """Delegation at the large population, beside the two-hop relay."""
    row = rows.row
    return [
        row(
            f"delegation p50 ({rows.large} agents)",
            "delegation.sequential.p50",
            "ms",
            "floor.relay.sequential.p50",
            "delegation_p50_vs_relay_p50",
        ),
        row(
            f"delegation p99 ({rows.large} agents)",
            "delegation.sequential.p99",
            "ms",
            "floor.relay.sequential.p99",
            "delegation_p99_vs_relay_p99",
        ),
        row(
            "delegation p50, 256 in flight",
            "delegation.concurrent.p50",
            "ms",
            "floor.relay.concurrent.p50",
            "delegation_inflight_p50_vs_relay_inflight_p50",
        ),
        row("delegation p99, 256 in flight", "delegation.concurrent.p99", "ms"),
        row(
            "delegations/s, 256 in flight",
            "delegation.concurrent.per_s",
            "/s",
            RELAY_RATE,
            "delegation_rate_vs_relay_rate",
        ),
        row(
            "core CPU per delegation, 256 in flight",
            "delegation.concurrent.cpu_us_per_call",
            "us",
            "floor.relay.concurrent.cpu_us_per_call",
            "delegation_cpu_vs_relay_cpu",
        ),
        row(
            "delegate+complete cycles/s",
            "delegation.cycles.per_s",
            "/s",
            RELAY_RATE,
            "cycles_rate_vs_relay_rate",
        ),
        row(
            f"cycles/s, {rows.payload} payloads (vs a few bytes)",
            "delegation.cycles_payload.per_s",
            "/s",
            "delegation.cycles.per_s",
            "payload_cycles_rate_vs_cycles_rate",
        ),
        row(
            f"core CPU per cycle, {rows.payload} payloads",
            "delegation.cycles_payload.cpu_us_per_call",
            "us",
            "delegation.cycles.cpu_us_per_call",
            "payload_cycle_cpu_vs_cycle_cpu",
        ),
    ]


def scale(rows: Rows) -> list[Row]:
    """The same delegations at 100 agents and at the large population."""
    row = rows.row
    return [
        row(
            "delegation p50, 100 agents",
            "scale.small.p50",
            "ms",
            "floor.relay.sequential.p50",
            "delegation_small_p50_vs_relay_p50",
        ),
        row(
            f"delegation p50, {rows.large} agents",
            "scale.large.p50",
            "ms",
            "scale.small.p50",
            "scale_large_vs_small_p50",
        ),
    ]


def memory(rows: Rows) -> list[Row]:
    """The core's resident memory, idle and with its agents."""
    row = rows.row
    return [
        row(
            "core RSS idle",
            "memory.core_rss_idle_mib",
            "MiB",
            "startup_probe.rss_mib",
            "core_rss_idle_vs_probe",
        ),
        row(
            "core RSS idle, no plugins",
            "variants.no_plugins.rss_idle_mib",
            "MiB",
            "startup_probe.rss_mib",
        ),
        row("core RSS, 100 agents", "memory.core_rss_small_population_mib", "MiB"),
        row(f"core RSS, {rows.large} agents", "memory.core_rss_after_bulk_mib", "MiB"),
        row("core memory per agent", "memory.per_agent_kib", "KiB"),
        row("core RSS peak", "memory.core_rss_peak_mib", "MiB"),
    ]


def plugins(rows: Rows) -> list[Row]:
    """What plugins and per-task log lines cost, by difference."""
    row = rows.row
    return [
        row(
            "delegation p50, all plugins",
            "plugins.all.p50",
            "ms",
            "plugins.none.p50",
            "plugins_all_vs_none_p50",
        ),
        row(
            "core CPU per cycle, all plugins",
            "delegation.cycles.cpu_us_per_call",
            "us",
            "variants.no_plugins.cycles.cpu_us_per_call",
            "plugins_all_vs_none_cycle_cpu",
        ),
        row(
            "delegations/s, no plugins",
            "variants.no_plugins.concurrent.per_s",
            "/s",
            "floor.relay.concurrent.per_s",
            "no_plugins_rate_vs_relay_rate",
        ),
        row(
            "delegations/s, no plugins, log WARNING",
            "variants.no_plugins_log_warning.concurrent.per_s",
            "/s",
            "floor.relay.concurrent.per_s",
            "lean_rate_vs_relay_rate",
        ),
        row("cycles/s, no plugins", "variants.no_plugins.cycles.per_s", "/s"),
        row(
            "core CPU per cycle, no plugins",
            "variants.no_plugins.cycles.cpu_us_per_call",
            "us",
            "variants.no_plugins_log_warning.cycles.cpu_us_per_call",
            "log_info_vs_warning_cycle_cpu",
        ),
        row(
            "cycles/s, no plugins, log WARNING",
            "variants.no_plugins_log_warning.cycles.per_s",
            "/s",
            "floor.relay.concurrent.per_s",
            "lean_cycles_rate_vs_relay_rate",
        ),
        row(
            "delegation p50, no plugins, log WARNING",
            "variants.no_plugins_log_warning.sequential.p50",
            "ms",
            "floor.relay.sequential.p50",
            "lean_p50_vs_relay_p50",
        ),
        row(
            "delegation p50, no plugins",
            "plugins.none.p50",
            "ms",
            "floor.relay.sequential.p50",
            "plugins_none_p50_vs_relay_p50",
        ),
    ]


def plugin_variants(rows: Rows) -> list[Row]:
    """Each plugin alone (the full run only), beside no plugins: what that one plugin costs."""
    row = rows.row
    found: list[Row] = []
    for variant in rows.figures.get("variants", {}):
        if variant.startswith("only_"):
            plugin = variant.removeprefix("only_")
            found += [
                row(
                    f"delegation p50, only {plugin}",
                    f"variants.{variant}.sequential.p50",
                    "ms",
                    "variants.no_plugins.sequential.p50",
                    f"{variant}_p50_vs_none",
                ),
                row(
                    f"core CPU per cycle, only {plugin}",
                    f"variants.{variant}.cycles.cpu_us_per_call",
                    "us",
                    "variants.no_plugins.cycles.cpu_us_per_call",
                    f"{variant}_cycle_cpu_vs_none",
                ),
                row(
                    f"core RSS idle, only {plugin}",
                    f"variants.{variant}.rss_idle_mib",
                    "MiB",
                    "variants.no_plugins.rss_idle_mib",
                ),
            ]
    return found


def uvloop(rows: Rows) -> list[Row]:
    """The floor again on uvloop, when it is installed; and a core without plugins on its
    default loop (uvloop) beside one on asyncio."""
    row = rows.row
    if "floor_uvloop" not in rows.figures:
        return []
    return [
        row(
            "core CPU per cycle, no plugins: uvloop / asyncio",
            "variants.no_plugins.cycles.cpu_us_per_call",
            "us",
            "variants.no_plugins_asyncio.cycles.cpu_us_per_call",
            "no_plugins_loop_vs_asyncio_cycle_cpu",
        ),
        row(
            "cycles/s, no plugins: uvloop / asyncio",
            "variants.no_plugins.cycles.per_s",
            "/s",
            "variants.no_plugins_asyncio.cycles.per_s",
            "no_plugins_loop_vs_asyncio_cycles_rate",
        ),
        row(
            "delegation p50, no plugins: uvloop / asyncio",
            "variants.no_plugins.sequential.p50",
            "ms",
            "variants.no_plugins_asyncio.sequential.p50",
            "no_plugins_loop_vs_asyncio_p50",
        ),
        row("floor (uvloop): echo p50", "floor_uvloop.echo.sequential.p50", "ms"),
        row(
            "floor (uvloop): relay p50",
            "floor_uvloop.relay.sequential.p50",
            "ms",
            "floor.relay.sequential.p50",
            "relay_uvloop_p50_vs_relay_p50",
        ),
        row("floor (uvloop): relay req/s", "floor_uvloop.relay.concurrent.per_s", "/s"),
    ]
