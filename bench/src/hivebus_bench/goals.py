"""This project's performance goals: reported beside the figures, never enforced.

Wall time on a shared machine is not a test, so a goal missed is a line in the table and a
``false`` in the report, never a failed run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .ratios import figure

__all__ = ["DURABLE_HOT_PATH", "GOALS", "Goal", "goals"]


@dataclass(frozen=True)
class Goal:
    text: str
    source: str
    """A ratio name, or ``figures.<path>`` for an absolute figure."""
    at_most: float | None = None
    at_least: float | None = None
    below: float | None = None
    """Strictly under (``< 45 MiB``), where ``at_most`` would allow the bound itself."""
    issue: int | None = None
    """The issue that set the goal, when one did."""

    def value(self, figures: dict[str, Any], ratios: dict[str, float]) -> float | None:
        if self.source.startswith("figures."):
            return figure(figures, self.source.removeprefix("figures."))
        return ratios.get(self.source)

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        if self.at_most is not None and value > self.at_most:
            return False
        if self.below is not None and value >= self.below:
            return False
        return not (self.at_least is not None and value < self.at_least)

    @property
    def target(self) -> str:
        if self.at_most is not None:
            return f"<= {self.at_most}"
        if self.below is not None:
            return f"< {self.below}"
        return f">= {self.at_least}"


DURABLE_HOT_PATH = 11
"""Issue 11, "The durable hot path": its goals are ratios to the bare relay in the same run."""

GOALS = (
    # Issue 11: the JetStream state (what `hivebus up` runs) against the bare relay.
    Goal(
        "JetStream: cycles with 256 in flight >= 0.35 of the relay's throughput",
        "jetstream_cycles_rate_vs_relay_rate",
        at_least=0.35,
        issue=DURABLE_HOT_PATH,
    ),
    Goal(
        "JetStream: delegation p50 within 2.0x of the two-hop relay",
        "jetstream_delegation_p50_vs_relay_p50",
        2.0,
        issue=DURABLE_HOT_PATH,
    ),
    Goal(
        "JetStream: core CPU per cycle within 2x of in-memory",
        "jetstream_cycle_cpu_vs_memory_cpu",
        2.0,
        issue=DURABLE_HOT_PATH,
    ),
    # In memory, registration, idle memory: goals this project had before issue 11, which
    # restated them (one goal, one row; the texts kept as reports have always given them).
    # The throughput is delegations/s with 256 in flight (delegate only, no completion).
    Goal(
        "delegation p50 within 1.3x of the two-hop relay",
        "delegation_p50_vs_relay_p50",
        1.3,
        issue=DURABLE_HOT_PATH,
    ),
    Goal(
        "delegations with 256 in flight >= 60% of the relay's throughput",
        "delegation_rate_vs_relay_rate",
        at_least=0.6,
        issue=DURABLE_HOT_PATH,
    ),
    Goal(
        "registration p50 within 1.5x of the echo",
        "registration_p50_vs_echo_p50",
        1.5,
        issue=DURABLE_HOT_PATH,
    ),
    Goal(
        "core RSS idle under 45 MiB",
        "figures.memory.core_rss_idle_mib",
        below=45.0,
        issue=DURABLE_HOT_PATH,
    ),
    Goal(
        "delegation p50 at the large population within 1.2x of 100",
        "scale_large_vs_small_p50",
        1.2,
    ),
    Goal("under 2 KiB per registered agent", "figures.memory.per_agent_kib", 2.0),
    Goal("start to serving under 0.5 s", "figures.startup.core_to_serving_ms", 500.0),
    Goal(
        "delegation p50 with JetStream state within 2x of in-memory",
        "jetstream_delegation_p50_vs_memory_p50",
        2.0,
    ),
)


def goals(figures: dict[str, Any], ratios: dict[str, float]) -> list[dict[str, Any]]:
    """Each goal with its target, its value (None when not measured) and whether it is met."""
    found: list[dict[str, Any]] = []
    for goal in GOALS:
        value = goal.value(figures, ratios)
        found.append(
            {
                "goal": goal.text,
                "source": goal.source,
                "target": goal.target,
                "value": value,
                "met": goal.met(value),
                "issue": goal.issue,
            }
        )
    return found
