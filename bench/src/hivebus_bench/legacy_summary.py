"""The legacy pass/fail summary: five figures against the legacy ``OrchestratorConfig`` thresholds.

Legacy dashboards read ``summary.overall_status`` and ``summary.critical_requirements``; each
requirement says which figure it was measured as, since ours are not the legacy harness's.
"""

from __future__ import annotations

import importlib
from typing import Any

from .ratios import figure

__all__ = ["LEGACY_THRESHOLDS", "critical_requirements", "summary", "thresholds"]

LEGACY_THRESHOLDS: dict[str, float] = {
    "max_agent_registration_ms": 100.0,
    "max_task_delegation_ms": 500.0,
    "max_system_initialization_ms": 2000.0,
    "max_memory_mb": 50.0,
    "max_agents": 100,
}
"""The legacy ``OrchestratorConfig`` defaults, used until ``hivebus.universal`` provides them."""


def thresholds() -> tuple[dict[str, float], str]:
    """The legacy thresholds and where they came from."""
    for module_name in ("hivebus.universal", "hivebus"):
        try:
            config_class = importlib.import_module(module_name).OrchestratorConfig
            config = config_class()
            values = {name: float(getattr(config, name)) for name in LEGACY_THRESHOLDS}
        except Exception:  # not there (yet), or not the shape we expect: use our copy
            continue
        return values, f"{module_name}.OrchestratorConfig"
    # The name reports have always given; ``hivebus_bench.report`` re-exports it.
    return dict(LEGACY_THRESHOLDS), "hivebus_bench.report.LEGACY_THRESHOLDS"


def _requirement(
    actual: float | None, threshold: float, unit: str, measured_as: str, at_least: bool = False
) -> dict[str, Any]:
    passed = actual is not None and (actual >= threshold if at_least else actual <= threshold)
    return {
        "threshold": threshold,
        "actual": actual,
        "unit": unit,
        "passed": passed,
        "measured_as": measured_as,
    }


def critical_requirements(figures: dict[str, Any], limits: dict[str, float]) -> dict[str, Any]:
    seq_p99 = figure(figures, "delegation.sequential.p99")
    conc_p99 = figure(figures, "delegation.concurrent.p99")
    worst_delegation = max((v for v in (seq_p99, conc_p99) if v is not None), default=None)
    return {
        "initialization_time": _requirement(
            figure(figures, "startup.core_to_serving_ms"),
            limits["max_system_initialization_ms"],
            "ms",
            "core process spawn to serving, plugins loaded (median)",
        ),
        "agent_registration_time": _requirement(
            figure(figures, "registration.sequential.p99"),
            limits["max_agent_registration_ms"],
            "ms",
            "registration round trip over NATS, p99",
        ),
        "concurrent_agents_support": _requirement(
            figure(figures, "registration.registered"),
            figure(figures, "registration.requested") or limits["max_agents"],
            "agents",
            "agents registered with 256 registrations in flight",
            at_least=True,
        ),
        "task_delegation_time": _requirement(
            worst_delegation,
            limits["max_task_delegation_ms"],
            "ms",
            "delegate -> offer accepted -> reply, p99, worst of sequential and 256 in flight",
        ),
        "memory_usage": _requirement(
            figure(figures, "memory.core_rss_small_population_mib"),
            limits["max_memory_mb"],
            "MiB",
            "core RSS with the legacy default population (100 agents) registered",
        ),
    }


def summary(
    requirements: dict[str, Any], goals: list[dict[str, Any]], failed_scenarios: list[str]
) -> dict[str, Any]:
    """PASS when every requirement passed and every scenario ran; the goals only counted."""
    passed = all(r["passed"] for r in requirements.values()) and not failed_scenarios
    return {
        "overall_status": "PASS" if passed else "FAIL",
        "critical_requirements": requirements,
        "goals_met": sum(1 for g in goals if g["met"]),
        "goals_total": len(goals),
        "failed_scenarios": failed_scenarios,
    }
