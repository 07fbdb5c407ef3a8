"""Service levels of one task type: latency percentiles against targets, and the error budget.

The budget is ``1 - success_target`` of finished tasks. Its burn rate over a window is the
failure ratio there divided by the budget: 1 spends the budget exactly over the SLO period,
14.4 spends a 30-day budget's 2% in one hour. Following the SRE workbook's multi-window rule,
the budget alert fires only while **both** a short and a long window burn past the threshold:
the long window proves it matters, the short one that it is still happening (so the alert
resolves soon after the failures stop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import JsonValue

from .settings import Objective, ProductionSettings
from .windows import Outcomes, Samples, percentile

__all__ = ["Breach", "ServiceLevel", "burn_rate"]


def burn_rate(ok: int, failed: int, success_target: float) -> float:
    """How many times faster than sustainable the budget burns; 0 without finished tasks."""
    total = ok + failed
    if total == 0:
        return 0.0
    return (failed / total) / (1.0 - success_target)


@dataclass(frozen=True)
class Breach:
    """One broken objective: ``kind`` names it (``completion_p95``, ``error_budget``)."""

    kind: str
    summary: str
    details: dict[str, JsonValue]
    severity: str = "warning"


@dataclass
class ServiceLevel:
    """Everything measured for one task type, bounded by the settings' window sizes."""

    settings: ProductionSettings
    assignment: Samples = field(init=False)
    completion: Samples = field(init=False)
    outcomes: Outcomes = field(init=False)

    def __post_init__(self) -> None:
        size = self.settings.window_size
        self.assignment = Samples(size)
        self.completion = Samples(size)
        # Five buckets per short window: the windows are exact to a fifth of the short one.
        self.outcomes = Outcomes(self.settings.short_window_s / 5, self.settings.long_window_s)

    def assigned(self, at: float, wait_s: float) -> None:
        self.assignment.add(at, max(0.0, wait_s))

    def finished(self, at: float, ok: bool, elapsed_s: float | None) -> None:
        self.outcomes.add(at, ok)
        if ok and elapsed_s is not None:
            self.completion.add(at, max(0.0, elapsed_s))

    def figures(self, now: float, objective: Objective) -> dict[str, JsonValue]:
        """What the status shows for this type: percentiles, success ratio, burn rates."""
        s = self.settings
        out: dict[str, JsonValue] = {}
        for name, samples in (("assignment", self.assignment), ("completion", self.completion)):
            recent = samples.since(now - s.latency_window_s)
            out[f"{name}_samples"] = len(recent)
            for q in (95, 99):
                out[f"{name}_p{q}_s"] = round(percentile(recent, q / 100), 6) if recent else None
        ok, failed = self.outcomes.counts(now, s.long_window_s)
        out["finished"] = ok + failed
        out["success_ratio"] = round(ok / (ok + failed), 6) if ok + failed else None
        out["burn_rate_short"] = round(self.burn(now, s.short_window_s, objective), 3)
        out["burn_rate_long"] = round(self.burn(now, s.long_window_s, objective), 3)
        return out

    def breaches(self, now: float, objective: Objective) -> list[Breach]:
        s = self.settings
        found: list[Breach] = []
        for kind, target in objective.latency_targets().items():
            which, q = kind.split("_p")
            samples = self.assignment if which == "assignment" else self.completion
            recent = samples.since(now - s.latency_window_s)
            if len(recent) < s.min_samples:
                continue
            value = percentile(recent, int(q) / 100)
            if value > target:
                found.append(
                    Breach(
                        kind,
                        f"time to {which} p{q} is {value:.3f}s, target {target:g}s",
                        {"value_s": value, "target_s": target, "samples": len(recent)},
                    )
                )
        short = self.burn(now, s.short_window_s, objective)
        long = self.burn(now, s.long_window_s, objective)
        if short >= s.burn_rate_threshold and long >= s.burn_rate_threshold:
            ok, failed = self.outcomes.counts(now, s.short_window_s)
            found.append(
                Breach(
                    "error_budget",
                    f"error budget burning {short:.1f}x (short) and {long:.1f}x (long), "
                    f"threshold {s.burn_rate_threshold:g}x",
                    {
                        "burn_rate_short": round(short, 3),
                        "burn_rate_long": round(long, 3),
                        "threshold": s.burn_rate_threshold,
                        "success_target": objective.success_target,
                        "short_window_s": s.short_window_s,
                        "long_window_s": s.long_window_s,
                        "short_window_ok": ok,
                        "short_window_failed": failed,
                    },
                    severity="critical",
                )
            )
        return found

    def burn(self, now: float, window_s: float, objective: Objective) -> float:
        ok, failed = self.outcomes.counts(now, window_s)
        return burn_rate(ok, failed, objective.success_target)
