"""The table's JetStream section: the core with its state in JetStream, beside itself in memory.

Its floor column is the same figure in memory, so each ratio is what durability costs; one
row instead compares the delegation with its durable floor (the relay plus the writes it stores,
as many as the server counted per delegation).
"""

from __future__ import annotations

from .ratios import durable_floor, figure
from .rows import Row, Rows, fmt

__all__ = ["jetstream"]


def jetstream(rows: Rows) -> list[Row]:
    """Nothing when the run has no JetStream figures."""
    if "jetstream" not in rows.figures:
        return []
    row = rows.row
    floor = durable_floor(rows.figures)
    ratio = rows.ratios.get("jetstream_delegation_p50_vs_durable_floor")
    writes = figure(rows.figures, "jetstream.writes_per_delegation")
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
            f"JetStream: delegation p50 ({rows.large} agents)",
            "jetstream.delegation.sequential.p50",
            "ms",
            "delegation.sequential.p50",
            "jetstream_delegation_p50_vs_memory_p50",
        ),
        (
            f"JetStream: delegation p50 vs relay + {fmt(writes)} writes",
            fmt(figure(rows.figures, "jetstream.delegation.sequential.p50"), "ms"),
            fmt(floor, "ms"),
            f"{ratio:.2f}x" if ratio is not None else "",
        ),
        row(
            f"JetStream: delegation p99 ({rows.large} agents)",
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
            f"JetStream: cycles/s, {rows.payload} payloads",
            "jetstream.delegation.cycles_payload.per_s",
            "/s",
            "delegation.cycles_payload.per_s",
            "jetstream_payload_cycles_rate_vs_memory_rate",
        ),
        row(
            f"JetStream: core CPU per cycle, {rows.payload} payloads",
            "jetstream.delegation.cycles_payload.cpu_us_per_call",
            "us",
            "delegation.cycles_payload.cpu_us_per_call",
            "jetstream_payload_cycle_cpu_vs_memory_cpu",
        ),
        *_writes_by_stream(rows),
        row(
            "JetStream: core RSS idle",
            "jetstream.memory.core_rss_idle_mib",
            "MiB",
            "memory.core_rss_idle_mib",
            "jetstream_rss_idle_vs_memory_rss_idle",
        ),
        row(
            f"JetStream: core RSS, {rows.large} agents",
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


def _writes_by_stream(rows: Rows) -> list[Row]:
    """Where a cycle's writes go, stream by stream (a key-value bucket is ``KV_<bucket>``);
    the streams a cycle does not write to are in the report, not in the table."""
    cycle = rows.figures["jetstream"].get("writes", {}).get("cycle", {})
    return [
        rows.row(
            f"JetStream: writes per cycle to {stream}",
            f"jetstream.writes.cycle.by_stream.{stream}",
            "",
        )
        for stream, writes in cycle.get("by_stream", {}).items()
        if writes
    ]
