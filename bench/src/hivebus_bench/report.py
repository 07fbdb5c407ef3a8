"""Figures -> ratios to the floor, the performance goals, and the report with legacy keys.

The JSON keeps the keys legacy dashboards read (``summary``, ``benchmark_results``,
``system_info``, ``configuration``, ``timestamp``) and adds ``figures``, ``ratios`` and
``goals``. The legacy pass/fail summary compares against the legacy thresholds; the goals are
this project's and are reported, never enforced: wall time on a shared machine is not a test.
"""

from __future__ import annotations

import datetime
from typing import Any

from .goals import goals as goals_of
from .legacy_summary import LEGACY_THRESHOLDS, critical_requirements, summary, thresholds
from .plan import Plan
from .ratios import ratios as ratios_of
from .recorder import Recorder
from .stats import median_tree
from .system_info import system_info

# LEGACY_THRESHOLDS stays importable from here: reports name ``hivebus_bench.report`` as the
# thresholds' source when the legacy package does not provide them.
__all__ = ["LEGACY_THRESHOLDS", "build_report", "combine_reports", "derive"]


def derive(figures: dict[str, Any]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The ratios to the floor and the goals, computed from the figures alone."""
    ratios = ratios_of(figures)
    return ratios, goals_of(figures, ratios)


def build_report(
    plan: Plan, recorder: Recorder, load_start: tuple[float, float, float] | None
) -> dict[str, Any]:
    figures = recorder.figures
    ratios, goals = derive(figures)
    limits, limits_source = thresholds()
    requirements = critical_requirements(figures, limits)
    failed_scenarios = [r["name"] for r in recorder.results if not r["success"]]
    return {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "summary": summary(requirements, goals, failed_scenarios),
        "benchmark_results": recorder.results,
        "figures": figures,
        "ratios": ratios,
        "goals": goals,
        "system_info": system_info(load_start),
        "configuration": {
            "quick": plan.quick,
            "agents": plan.agents,
            "small_agents": plan.small_agents,
            "inflight": plan.inflight,
            "samples": {
                "floor_sequential": plan.floor_sequential,
                "floor_concurrent": plan.floor_concurrent,
                "registration_sequential": plan.registration_sequential,
                "delegation_sequential": plan.delegation_sequential,
                "delegation_concurrent": plan.delegation_concurrent,
                "cycles": plan.cycles,
                "warmup": plan.warmup,
                "startup_runs": plan.startup_runs,
            },
            "thresholds": limits,
            "thresholds_source": limits_source,
            "core_settings": figures.get("core_settings", {}),
            "plugins": figures.get("plugins", {}).get("names", []),
            "profile": figures.get("profile"),
            "core_event_loop": figures.get("startup", {}).get("core_event_loop"),
        },
    }


def combine_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs' reports as one: every figure the median of its runs, ratios re-derived.

    The legacy summary and results are the last run's; ``system_info.runs`` says how many.
    """
    figures = median_tree([r["figures"] for r in reports])
    ratios, goals = derive(figures)
    combined = dict(reports[-1])
    limits = combined["configuration"]["thresholds"]
    requirements = critical_requirements(figures, limits)
    failed = sorted({name for r in reports for name in r["summary"]["failed_scenarios"]})
    combined.update(figures=figures, ratios=ratios, goals=goals)
    combined["summary"] = summary(requirements, goals, failed)
    combined["system_info"] = {
        **combined["system_info"],
        "runs": len(reports),
        "timestamps": [r["timestamp"] for r in reports],
    }
    return combined
