"""The table's headline: the durable hot path (issue 11), JetStream state beside the bare relay.

What ``hivebus up`` runs by default keeps its state in JetStream, so its delegate+complete cycle
and its delegation latency are the figures that matter most; each sits beside the two-hop
relay's figure from the same run. Then what the server stored per delegation, completion and
cycle: every write is a round trip the hot path waits for.
"""

from __future__ import annotations

from .rows import Row, Rows

__all__ = ["headline"]

RELAY_RATE = "floor.relay.concurrent.per_s"


def headline(rows: Rows) -> list[Row]:
    """Nothing when the run has no JetStream figures."""
    if "jetstream" not in rows.figures:
        return []
    row = rows.row
    return [
        row(
            "JetStream: delegate+complete cycles/s, 256 in flight",
            "jetstream.delegation.cycles.per_s",
            "/s",
            RELAY_RATE,
            "jetstream_cycles_rate_vs_relay_rate",
        ),
        row(
            "JetStream: delegation p50, one at a time",
            "jetstream.delegation.sequential.p50",
            "ms",
            "floor.relay.sequential.p50",
            "jetstream_delegation_p50_vs_relay_p50",
        ),
        row(
            "JetStream: delegation p50, 256 in flight",
            "jetstream.delegation.concurrent.p50",
            "ms",
            "floor.relay.concurrent.p50",
            "jetstream_delegation_inflight_p50_vs_relay_inflight_p50",
        ),
        row("JetStream: writes per delegation (server)", "jetstream.writes_per_delegation", ""),
        row("JetStream: writes per completion (server)", "jetstream.writes_per_completion", ""),
        row("JetStream: writes per cycle (server)", "jetstream.writes_per_cycle", ""),
    ]
