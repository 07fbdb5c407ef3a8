"""The health score in the status: one number from 0 to 100, and the parts it is made of.

Each component is a fraction from 0 (bad) to 1 (fine) with a weight; the score is their
weighted mean. Each says why it is not 1, so an operator reading 72 knows where to look.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import JsonValue

__all__ = ["WEIGHTS", "Component", "fraction_fine", "score"]

WEIGHTS = {"service_levels": 40, "error_budget": 30, "anomalies": 15, "capacity": 15}
"""Latency objectives and the error budget are the promises; anomalies and capacity warn."""


@dataclass(frozen=True)
class Component:
    name: str
    value: float
    why: str

    def as_json(self) -> dict[str, JsonValue]:
        return {"score": round(self.value, 3), "weight": WEIGHTS[self.name], "why": self.why}


def score(components: list[Component]) -> tuple[int, dict[str, JsonValue]]:
    """``(score, {component: {score, weight, why}})``."""
    total = sum(WEIGHTS[c.name] for c in components)
    value = sum(WEIGHTS[c.name] * min(1.0, max(0.0, c.value)) for c in components)
    return round(100 * value / total) if total else 100, {c.name: c.as_json() for c in components}


def fraction_fine(name: str, total: int, bad: list[str], what: str) -> Component:
    """``name`` scores the share of ``total`` things not in ``bad``."""
    if not total or not bad:
        return Component(name, 1.0, f"no {what}")
    return Component(name, 1 - len(bad) / total, f"{what}: {', '.join(sorted(bad)[:10])}")
