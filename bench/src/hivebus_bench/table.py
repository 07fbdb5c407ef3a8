"""The report as a terminal table: each figure, its floor, the ratio; then the goals."""

from __future__ import annotations

from typing import Any

from .ratios import durable_floor, figure

__all__ = ["render_table"]


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


Row = tuple[str, str, str, str]


def _rows(report: dict[str, Any]) -> list[Row]:
    f = report["figures"]
    r = report["ratios"]

    def row(name: str, path: str, unit: str, floor: str | None = None, ratio: str = "") -> Row:
        ratio_text = f"{r[ratio]:.2f}x" if ratio in r else ""
        floor_text = _fmt(figure(f, floor), unit) if floor else ""
        return (name, _fmt(figure(f, path), unit), floor_text, ratio_text)

    large = figure(f, "scale.large_agents")
    large_text = f"{large:,.0f}" if large is not None else "N"
    interval = figure(f, "heartbeats.default_interval_s")
    interval_text = f"{interval:g}" if interval is not None else "?"
    reg_rate, relay_rate = "floor.echo.concurrent.per_s", "floor.relay.concurrent.per_s"
    rows: list[Row] = [
        row("floor: echo p50 (one hop)", "floor.echo.sequential.p50", "ms"),
        row("floor: echo req/s, 256 in flight", reg_rate, "/s"),
        row("floor: relay p50 (two hops)", "floor.relay.sequential.p50", "ms"),
        row("floor: relay req/s, 256 in flight", relay_rate, "/s"),
        row(
            "floor: relay awaiting inline, req/s",
            "floor.relay_inline.concurrent.per_s",
            "/s",
            relay_rate,
            "relay_inline_rate_vs_relay_rate",
        ),
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
            reg_rate,
            "registration_rate_vs_echo_rate",
        ),
        row(
            "core CPU per registration, 256 in flight",
            "registration.concurrent.cpu_us_per_call",
            "us",
            "floor.echo.concurrent.cpu_us_per_call",
            "registration_cpu_vs_echo_cpu",
        ),
        row("heartbeats/s, 256 in flight", "heartbeats.per_s", "/s"),
        row("core CPU per heartbeat", "heartbeats.cpu_us_per_call", "us"),
        row(
            f"core CPU on heartbeats, {large_text} agents every {interval_text} s",
            "heartbeats.cpu_percent_at_default_interval",
            "%",
        ),
        row(
            f"delegation p50 ({large_text} agents)",
            "delegation.sequential.p50",
            "ms",
            "floor.relay.sequential.p50",
            "delegation_p50_vs_relay_p50",
        ),
        row(
            f"delegation p99 ({large_text} agents)",
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
            relay_rate,
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
            relay_rate,
            "cycles_rate_vs_relay_rate",
        ),
        row(
            "delegation p50, 100 agents",
            "scale.small.p50",
            "ms",
            "floor.relay.sequential.p50",
            "delegation_small_p50_vs_relay_p50",
        ),
        row(
            f"delegation p50, {large_text} agents",
            "scale.large.p50",
            "ms",
            "scale.small.p50",
            "scale_large_vs_small_p50",
        ),
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
        row(f"core RSS, {large_text} agents", "memory.core_rss_after_bulk_mib", "MiB"),
        row("core memory per agent", "memory.per_agent_kib", "KiB"),
        row("core RSS peak", "memory.core_rss_peak_mib", "MiB"),
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
    for variant in f.get("variants", {}):
        if variant.startswith("only_"):
            plugin = variant.removeprefix("only_")
            rows += [
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
    if "jetstream" in f:
        rows += _jetstream_rows(f, r, row, large_text)
    if "floor_uvloop" in f:
        rows += [
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
    return rows


def _jetstream_rows(f: dict[str, Any], r: dict[str, Any], row: Any, large_text: str) -> list[Row]:
    """The core with JetStream state: its floor column is the same figure in memory."""
    floor = durable_floor(f)
    ratio = r.get("jetstream_delegation_p50_vs_durable_floor")
    return [
        row(
            "JetStream floor: one compare-and-set write p50",
            "jetstream.floor.kv_write.sequential.p50",
            "ms",
            "floor.echo.sequential.p50",
            "jetstream_kv_write_p50_vs_echo_p50",
        ),
        row(
            "JetStream floor: writes/s, 256 in flight",
            "jetstream.floor.kv_write.concurrent.per_s",
            "/s",
        ),
        row(
            "JetStream: spawn to serving (vs memory)",
            "jetstream.startup.core_to_serving_ms",
            "ms",
            "startup.core_to_serving_ms",
            "jetstream_startup_vs_memory_startup",
        ),
        row(
            "JetStream: registration p50 (vs memory)",
            "jetstream.registration.sequential.p50",
            "ms",
            "registration.sequential.p50",
            "jetstream_registration_p50_vs_memory_p50",
        ),
        row(
            "JetStream: registration p99 (vs memory)",
            "jetstream.registration.sequential.p99",
            "ms",
            "registration.sequential.p99",
            "jetstream_registration_p99_vs_memory_p99",
        ),
        row(
            "JetStream: registrations/s, 256 in flight",
            "jetstream.registration.concurrent.per_s",
            "/s",
            "registration.concurrent.per_s",
            "jetstream_registration_rate_vs_memory_rate",
        ),
        row(
            f"JetStream: delegation p50 ({large_text} agents)",
            "jetstream.delegation.sequential.p50",
            "ms",
            "delegation.sequential.p50",
            "jetstream_delegation_p50_vs_memory_p50",
        ),
        (
            "JetStream: delegation p50 vs relay + writes",
            _fmt(figure(f, "jetstream.delegation.sequential.p50"), "ms"),
            _fmt(floor, "ms"),
            f"{ratio:.2f}x" if ratio is not None else "",
        ),
        row(
            f"JetStream: delegation p99 ({large_text} agents)",
            "jetstream.delegation.sequential.p99",
            "ms",
            "delegation.sequential.p99",
            "jetstream_delegation_p99_vs_memory_p99",
        ),
        row(
            "JetStream: delegation p50, 256 in flight",
            "jetstream.delegation.concurrent.p50",
            "ms",
            "delegation.concurrent.p50",
            "jetstream_delegation_inflight_p50_vs_memory",
        ),
        row(
            "JetStream: delegations/s, 256 in flight",
            "jetstream.delegation.concurrent.per_s",
            "/s",
            "delegation.concurrent.per_s",
            "jetstream_delegation_rate_vs_memory_rate",
        ),
        row(
            "JetStream: core CPU per delegation",
            "jetstream.delegation.concurrent.cpu_us_per_call",
            "us",
            "delegation.concurrent.cpu_us_per_call",
            "jetstream_delegation_cpu_vs_memory_cpu",
        ),
        row(
            "JetStream: delegate+complete cycles/s",
            "jetstream.delegation.cycles.per_s",
            "/s",
            "delegation.cycles.per_s",
            "jetstream_cycles_rate_vs_memory_rate",
        ),
        row(
            "JetStream: core CPU per cycle",
            "jetstream.delegation.cycles.cpu_us_per_call",
            "us",
            "delegation.cycles.cpu_us_per_call",
            "jetstream_cycle_cpu_vs_memory_cpu",
        ),
        row(
            "JetStream: core RSS idle",
            "jetstream.memory.core_rss_idle_mib",
            "MiB",
            "memory.core_rss_idle_mib",
            "jetstream_rss_idle_vs_memory_rss_idle",
        ),
        row(
            f"JetStream: core RSS, {large_text} agents",
            "jetstream.memory.core_rss_after_bulk_mib",
            "MiB",
            "memory.core_rss_after_bulk_mib",
        ),
        row(
            "JetStream: core RSS peak",
            "jetstream.memory.core_rss_peak_mib",
            "MiB",
            "memory.core_rss_peak_mib",
        ),
    ]


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells)

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def render_table(report: dict[str, Any]) -> str:
    """The figures, their floors and ratios, then the goals and the legacy verdict."""
    figures = _table(("figure", "value", "floor", "ratio"), list(_rows(report)))
    goals = _table(
        ("goal", "target", "value", "met"),
        [
            (
                g["goal"],
                g["target"],
                _fmt(g["value"]),
                {True: "yes", False: "NO", None: "-"}[g["met"]],
            )
            for g in report["goals"]
        ],
    )
    summary = report["summary"]
    requirements = ", ".join(
        f"{name}={'ok' if r['passed'] else 'FAIL'}"
        for name, r in summary["critical_requirements"].items()
    )
    info = report["system_info"]
    lines = [
        f"hivebus bench  {report['timestamp']}  {info['cpu_count']} cpus  "
        f"python {info['python']}  loop {info['event_loop']}"
        + (f" (uvloop {info['uvloop']} installed)" if info["uvloop"] else ""),
        "",
        figures,
        "",
        goals,
        "",
        f"legacy summary: {summary['overall_status']} ({requirements})",
    ]
    if summary["failed_scenarios"]:
        lines.append(f"failed scenarios: {', '.join(summary['failed_scenarios'])}")
    return "\n".join(lines)
