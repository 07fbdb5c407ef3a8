"""Figures -> ratios to the floor, the performance goals, and the report with legacy keys.

The JSON keeps the keys legacy dashboards read (``summary``, ``benchmark_results``,
``system_info``, ``configuration``, ``timestamp``) and adds ``figures``, ``ratios`` and
``goals``. The legacy pass/fail summary compares against the legacy thresholds; the goals are
this project's and are reported, never enforced: wall time on a shared machine is not a test.
"""

from __future__ import annotations

import datetime
import importlib
import math
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from hivebus.server import find_nats_server

from . import loops
from .plan import Plan
from .recorder import Recorder
from .stats import median_tree

__all__ = [
    "GOALS",
    "LEGACY_THRESHOLDS",
    "build_report",
    "combine_reports",
    "derive",
    "durable_floor",
    "figure",
    "thresholds",
]

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
    return dict(LEGACY_THRESHOLDS), "hivebus_bench.report.LEGACY_THRESHOLDS"


# --- reading figures --------------------------------------------------------------------


def figure(tree: dict[str, Any], path: str) -> float | None:
    """The number at ``path`` (dotted keys) in the figures, or None."""
    node: Any = tree
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if isinstance(node, bool) or not isinstance(node, int | float) or math.isnan(node):
        return None
    return float(node)


def _ratio(figures: dict[str, Any], top: str, bottom: str) -> float | None:
    a, b = figure(figures, top), figure(figures, bottom)
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


RATIOS: dict[str, tuple[str, str]] = {
    "registration_p50_vs_echo_p50": ("registration.sequential.p50", "floor.echo.sequential.p50"),
    "registration_p99_vs_echo_p99": ("registration.sequential.p99", "floor.echo.sequential.p99"),
    "registration_rate_vs_echo_rate": (
        "registration.concurrent.per_s",
        "floor.echo.concurrent.per_s",
    ),
    "delegation_p50_vs_relay_p50": ("delegation.sequential.p50", "floor.relay.sequential.p50"),
    "delegation_p99_vs_relay_p99": ("delegation.sequential.p99", "floor.relay.sequential.p99"),
    "delegation_small_p50_vs_relay_p50": ("scale.small.p50", "floor.relay.sequential.p50"),
    "delegation_inflight_p50_vs_relay_inflight_p50": (
        "delegation.concurrent.p50",
        "floor.relay.concurrent.p50",
    ),
    "delegation_rate_vs_relay_rate": (
        "delegation.concurrent.per_s",
        "floor.relay.concurrent.per_s",
    ),
    "cycles_rate_vs_relay_rate": ("delegation.cycles.per_s", "floor.relay.concurrent.per_s"),
    "relay_inline_rate_vs_relay_rate": (
        "floor.relay_inline.concurrent.per_s",
        "floor.relay.concurrent.per_s",
    ),
    "registration_cpu_vs_echo_cpu": (
        "registration.concurrent.cpu_us_per_call",
        "floor.echo.concurrent.cpu_us_per_call",
    ),
    "delegation_cpu_vs_relay_cpu": (
        "delegation.concurrent.cpu_us_per_call",
        "floor.relay.concurrent.cpu_us_per_call",
    ),
    "scale_large_vs_small_p50": ("scale.large.p50", "scale.small.p50"),
    "delegation_rate_vs_relay_inline_rate": (
        "delegation.concurrent.per_s",
        "floor.relay_inline.concurrent.per_s",
    ),
    "plugins_all_vs_none_p50": ("plugins.all.p50", "plugins.none.p50"),
    "plugins_all_vs_none_cycle_cpu": (
        "delegation.cycles.cpu_us_per_call",
        "variants.no_plugins.cycles.cpu_us_per_call",
    ),
    "registration_no_plugins_p50_vs_echo_p50": (
        "variants.no_plugins.registration.p50",
        "floor.echo.sequential.p50",
    ),
    "registration_lean_p50_vs_echo_p50": (
        "variants.no_plugins_log_warning.registration.p50",
        "floor.echo.sequential.p50",
    ),
    "lean_p50_vs_relay_p50": (
        "variants.no_plugins_log_warning.sequential.p50",
        "floor.relay.sequential.p50",
    ),
    "no_plugins_rate_vs_relay_rate": (
        "variants.no_plugins.concurrent.per_s",
        "floor.relay.concurrent.per_s",
    ),
    "lean_rate_vs_relay_rate": (
        "variants.no_plugins_log_warning.concurrent.per_s",
        "floor.relay.concurrent.per_s",
    ),
    "lean_cycles_rate_vs_relay_rate": (
        "variants.no_plugins_log_warning.cycles.per_s",
        "floor.relay.concurrent.per_s",
    ),
    "log_info_vs_warning_cycle_cpu": (
        "variants.no_plugins.cycles.cpu_us_per_call",
        "variants.no_plugins_log_warning.cycles.cpu_us_per_call",
    ),
    "plugins_none_p50_vs_relay_p50": ("plugins.none.p50", "floor.relay.sequential.p50"),
    "startup_vs_probe": ("startup.core_to_serving_ms", "startup_probe.ready_ms"),
    "core_rss_idle_vs_probe": ("memory.core_rss_idle_mib", "startup_probe.rss_mib"),
    "relay_uvloop_p50_vs_relay_p50": (
        "floor_uvloop.relay.sequential.p50",
        "floor.relay.sequential.p50",
    ),
    # JetStream state against the same figure in memory: what durability costs.
    "jetstream_delegation_p50_vs_memory_p50": (
        "jetstream.delegation.sequential.p50",
        "delegation.sequential.p50",
    ),
    "jetstream_delegation_p99_vs_memory_p99": (
        "jetstream.delegation.sequential.p99",
        "delegation.sequential.p99",
    ),
    "jetstream_delegation_rate_vs_memory_rate": (
        "jetstream.delegation.concurrent.per_s",
        "delegation.concurrent.per_s",
    ),
    "jetstream_delegation_inflight_p50_vs_memory": (
        "jetstream.delegation.concurrent.p50",
        "delegation.concurrent.p50",
    ),
    "jetstream_cycles_rate_vs_memory_rate": (
        "jetstream.delegation.cycles.per_s",
        "delegation.cycles.per_s",
    ),
    "jetstream_delegation_cpu_vs_memory_cpu": (
        "jetstream.delegation.concurrent.cpu_us_per_call",
        "delegation.concurrent.cpu_us_per_call",
    ),
    "jetstream_cycle_cpu_vs_memory_cpu": (
        "jetstream.delegation.cycles.cpu_us_per_call",
        "delegation.cycles.cpu_us_per_call",
    ),
    "jetstream_registration_p50_vs_memory_p50": (
        "jetstream.registration.sequential.p50",
        "registration.sequential.p50",
    ),
    "jetstream_registration_p99_vs_memory_p99": (
        "jetstream.registration.sequential.p99",
        "registration.sequential.p99",
    ),
    "jetstream_registration_rate_vs_memory_rate": (
        "jetstream.registration.concurrent.per_s",
        "registration.concurrent.per_s",
    ),
    "jetstream_startup_vs_memory_startup": (
        "jetstream.startup.core_to_serving_ms",
        "startup.core_to_serving_ms",
    ),
    "jetstream_rss_idle_vs_memory_rss_idle": (
        "jetstream.memory.core_rss_idle_mib",
        "memory.core_rss_idle_mib",
    ),
    # ... and against its floors: the relay, and one compare-and-set write to a bucket.
    "jetstream_delegation_p50_vs_relay_p50": (
        "jetstream.delegation.sequential.p50",
        "floor.relay.sequential.p50",
    ),
    "jetstream_registration_p50_vs_kv_write_p50": (
        "jetstream.registration.sequential.p50",
        "jetstream.floor.kv_write.sequential.p50",
    ),
    "jetstream_kv_write_p50_vs_echo_p50": (
        "jetstream.floor.kv_write.sequential.p50",
        "floor.echo.sequential.p50",
    ),
}
"""Each ratio: a figure over its floor (or over its own baseline), read from ``figures``."""


@dataclass(frozen=True)
class Goal:
    text: str
    source: str
    """A ratio name, or ``figures.<path>`` for an absolute figure."""
    at_most: float | None = None
    at_least: float | None = None

    def value(self, figures: dict[str, Any], ratios: dict[str, float]) -> float | None:
        if self.source.startswith("figures."):
            return figure(figures, self.source.removeprefix("figures."))
        return ratios.get(self.source)

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        if self.at_most is not None and value > self.at_most:
            return False
        return not (self.at_least is not None and value < self.at_least)

    @property
    def target(self) -> str:
        return f"<= {self.at_most}" if self.at_most is not None else f">= {self.at_least}"


GOALS = (
    Goal("delegation p50 within 1.3x of the two-hop relay", "delegation_p50_vs_relay_p50", 1.3),
    Goal(
        "delegations with 256 in flight >= 60% of the relay's throughput",
        "delegation_rate_vs_relay_rate",
        at_least=0.6,
    ),
    Goal("registration p50 within 1.5x of the echo", "registration_p50_vs_echo_p50", 1.5),
    Goal(
        "delegation p50 at the large population within 1.2x of 100",
        "scale_large_vs_small_p50",
        1.2,
    ),
    Goal("core RSS idle under 45 MiB", "figures.memory.core_rss_idle_mib", 45.0),
    Goal("under 2 KiB per registered agent", "figures.memory.per_agent_kib", 2.0),
    Goal("start to serving under 0.5 s", "figures.startup.core_to_serving_ms", 500.0),
    Goal(
        "delegation p50 with JetStream state within 2x of in-memory",
        "jetstream_delegation_p50_vs_memory_p50",
        2.0,
    ),
)


# --- the legacy summary -----------------------------------------------------------------


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


# --- the report -------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _first_line(path: str, prefix: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def system_info(load_start: tuple[float, float, float] | None) -> dict[str, Any]:
    try:
        server = subprocess.run(
            [str(find_nats_server()), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        server = None
    mem = _first_line("/proc/meminfo", "MemTotal")
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _first_line("/proc/cpuinfo", "model name"),
        "memory_total": mem,
        "load_average_start": load_start,
        "load_average_end": _loadavg(),
        "event_loop": "asyncio",
        "uvloop": loops.uvloop_version(),
        "hivebus": _version("hivebus"),
        "nats_py": _version("nats-py"),
        "nats_server": server,
    }


def _loadavg() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def durable_floor(figures: dict[str, Any]) -> float | None:
    """What a delegation with JetStream state cannot go below, in ms: the two-hop relay plus
    one compare-and-set write per transition it stores, one after another."""
    relay = figure(figures, "floor.relay.sequential.p50")
    write = figure(figures, "jetstream.floor.kv_write.sequential.p50")
    writes = figure(figures, "jetstream.writes_per_delegation")
    if relay is None or write is None or writes is None:
        return None
    return round(relay + writes * write, 4)


def derive(figures: dict[str, Any]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The ratios to the floor and the goals, computed from the figures alone."""
    ratios: dict[str, float] = {}
    floor = durable_floor(figures)
    js_p50 = figure(figures, "jetstream.delegation.sequential.p50")
    if floor and js_p50 is not None:
        ratios["jetstream_delegation_p50_vs_durable_floor"] = round(js_p50 / floor, 3)
    pairs = dict(RATIOS)
    for variant in figures.get("variants", {}):
        if variant.startswith("only_"):
            # Each plugin alone against no plugins: what that one plugin costs.
            base = "variants.no_plugins"
            pairs[f"{variant}_p50_vs_none"] = (
                f"variants.{variant}.sequential.p50",
                f"{base}.sequential.p50",
            )
            pairs[f"{variant}_cycle_cpu_vs_none"] = (
                f"variants.{variant}.cycles.cpu_us_per_call",
                f"{base}.cycles.cpu_us_per_call",
            )
    for name, (top, bottom) in pairs.items():
        value = _ratio(figures, top, bottom)
        if value is not None:
            ratios[name] = value
    goals = []
    for goal in GOALS:
        value = goal.value(figures, ratios)
        goals.append(
            {
                "goal": goal.text,
                "source": goal.source,
                "target": goal.target,
                "value": value,
                "met": goal.met(value),
            }
        )
    return ratios, goals


def build_report(
    plan: Plan, recorder: Recorder, load_start: tuple[float, float, float] | None
) -> dict[str, Any]:
    figures = recorder.figures
    ratios, goals = derive(figures)
    limits, limits_source = thresholds()
    requirements = critical_requirements(figures, limits)
    failed_scenarios = [r["name"] for r in recorder.results if not r["success"]]
    passed = all(r["passed"] for r in requirements.values()) and not failed_scenarios
    return {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "summary": {
            "overall_status": "PASS" if passed else "FAIL",
            "critical_requirements": requirements,
            "goals_met": sum(1 for g in goals if g["met"]),
            "goals_total": len(goals),
            "failed_scenarios": failed_scenarios,
        },
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
    passed = all(r["passed"] for r in requirements.values()) and not failed
    combined.update(figures=figures, ratios=ratios, goals=goals)
    combined["summary"] = {
        "overall_status": "PASS" if passed else "FAIL",
        "critical_requirements": requirements,
        "goals_met": sum(1 for g in goals if g["met"]),
        "goals_total": len(goals),
        "failed_scenarios": failed,
    }
    combined["system_info"] = {
        **combined["system_info"],
        "runs": len(reports),
        "timestamps": [r["timestamp"] for r in reports],
    }
    return combined
