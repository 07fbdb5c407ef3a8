"""Threshold checks: which configured limits the latest figures break.

Pure: figures in, one ``Check`` per configured limit out (breached or not), so the plugin can
fire or resolve each through the alert book on every evaluation. Resource causes are this
replica's own (its fingerprint names it); error rate and delegation time are the bus's, so
every replica judges the same fingerprint and the book unites them into one alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import JsonValue

from .resources import ResourceSample
from .settings import PerformanceSettings

__all__ = ["Check", "Figures", "judge"]


@dataclass(frozen=True, slots=True)
class Figures:
    resources: ResourceSample | None
    finished: int
    failed: int
    delegations: int
    delegation_p95_ms: float | None


@dataclass(frozen=True, slots=True)
class Check:
    fingerprint: str
    breached: bool
    summary: str
    details: dict[str, JsonValue] = field(default_factory=dict)


def _check(
    fingerprint: str,
    what: str,
    value: float | None,
    limit: float | None,
    unit: str,
    **extra: JsonValue,
) -> Check | None:
    if limit is None or value is None:
        return None
    details: dict[str, JsonValue] = {"value": round(value, 3), "limit": limit, **extra}
    return Check(
        fingerprint,
        value > limit,
        f"{what} is {value:.1f}{unit}, above the limit of {limit:g}{unit}",
        details,
    )


def judge(settings: PerformanceSettings, figures: Figures, replica: str) -> list[Check]:
    checks: list[Check | None] = []
    sample = figures.resources
    if sample is not None:
        mine = {"orchestrator_id": replica}
        checks += [
            _check(f"performance:cpu:{replica}", f"core {replica} CPU",
                   sample.cpu_percent, settings.max_cpu_percent, "%", **mine),
            _check(f"performance:memory_percent:{replica}", f"core {replica} memory",
                   sample.memory_percent, settings.max_memory_percent, "%", **mine),
            _check(f"performance:memory_mb:{replica}", f"core {replica} memory",
                   sample.memory_mb, settings.max_memory_mb, " MiB", **mine),
            _check(f"performance:disk:{replica}", f"core {replica} data directory disk",
                   sample.disk_used_percent, settings.max_disk_percent, "% used", **mine),
        ]  # fmt: skip
    # Too few samples in the window is no evidence: judged as within the limit, so an alert
    # raised earlier resolves when the traffic that caused it stops.
    enough = figures.finished >= settings.min_tasks
    rate = 100.0 * figures.failed / figures.finished if figures.finished else 0.0
    checks.append(
        _check("performance:error_rate", "task error rate", rate if enough else 0.0,
               settings.max_error_rate_percent, "%",
               failed=figures.failed, finished=figures.finished, window_s=settings.window_s)
    )  # fmt: skip
    enough = figures.delegations >= settings.min_tasks
    checks.append(
        _check("performance:delegation_p95", "p95 delegation time",
               (figures.delegation_p95_ms or 0.0) if enough else 0.0,
               settings.max_task_delegation_ms, " ms",
               delegations=figures.delegations, window_s=settings.window_s)
    )  # fmt: skip
    return [check for check in checks if check is not None]
