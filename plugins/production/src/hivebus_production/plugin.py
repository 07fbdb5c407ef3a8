"""The production plugin: hooks record, a timer evaluates, the context announces.

Hooks only append to fixed-size windows (constant time, never awaiting), so they cost the
core nothing measurable. Every ``interval_s`` a timer the host owns evaluates service levels,
anomalies and scaling, publishes what changed through the context (alerts on
``events.alert.<severity>`` through the context's alert book, signals on
``events.scale.up|down``), and caches the report that ``hivebus_status`` returns. Records in the
plugin's bucket keep one alert per cause and one signal per cooldown across core replicas.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from hivebus_hookspecs import (
    OrchestratorView,
    PluginContext,
    TaskStatus,
    TaskView,
    hookimpl,
)
from hivebus_hookspecs.context import AlertBook
from pydantic import JsonValue

from .claims import ScaleClaims
from .health import Component, fraction_fine, score
from .scaling import Pressure, Scaler, Signal, pressures
from .settings import ProductionSettings
from .tracking import TaskTypes

__all__ = ["NAME", "ProductionPlugin"]

NAME = "production"

log = logging.getLogger("hivebus_production")

Wanted = dict[str, tuple[str, str, dict[str, JsonValue]]]
"""fingerprint -> (severity, summary, details) of every alert that should be firing."""


class ProductionPlugin:
    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.time
        """Wall-clock time, as the core stamps tasks; a test may replace it."""
        self.context: PluginContext | None = None
        self._start(ProductionSettings(), None)

    def _start(self, settings: ProductionSettings, book: AlertBook | None) -> None:
        self.settings = settings
        self.types = TaskTypes(settings)
        self.scaler = Scaler(settings.scaling)
        self.book = book
        self.claims: ScaleClaims | None = None
        self.alerts_fired = 0
        self.alerts_resolved = 0
        self.signals_sent = 0
        self.last_signals: list[dict[str, JsonValue]] = []
        self.report: dict[str, JsonValue] = {"health_score": 100, "evaluated_at": None}

    # --- lifecycle ------------------------------------------------------------------------

    @hookimpl
    async def hivebus_startup(self, orchestrator: OrchestratorView, context: PluginContext) -> None:
        settings = context.settings(ProductionSettings)  # a ValueError names the bad setting
        replica = orchestrator.orchestrator_id
        self.context = context
        # One alert per cause across replicas, and a cause that flaps fires once per episode.
        book = context.alert_book(stale_after_s=settings.stale_after_s)
        self._start(settings, book)
        self.claims = ScaleClaims(context.kv, replica, settings.scaling.cooldown_s)
        # Nothing here touches the bucket: opening it may take longer than a start-up hook
        # may run. The first evaluation reads it.
        await context.serve("report", self.serve_report)
        context.every(settings.interval_s, self.evaluate, name="evaluate")

    async def serve_report(self, request: dict[str, Any]) -> dict[str, Any]:
        """``plugin.production.report``: the status contribution, on request."""
        return {"report": self.report}

    # --- hooks: record only ---------------------------------------------------------------

    @hookimpl
    def hivebus_task_assigned(self, task: TaskView) -> None:
        at = task.assigned_at or self.clock()
        start = max(task.created_at, task.not_before or 0.0)
        self.types.get(task.task_type).level.assigned(at, at - start)

    @hookimpl
    def hivebus_task_completed(self, task: TaskView) -> None:
        at = task.finished_at or self.clock()
        stats = self.types.get(task.task_type)
        stats.level.finished(at, True, at - task.created_at)
        if task.assigned_at is not None:
            stats.durations.observe(max(0.0, at - task.assigned_at))
        stats.failures.observe(0.0)

    @hookimpl
    def hivebus_task_failed(self, task: TaskView) -> None:
        at = task.finished_at or self.clock()
        stats = self.types.get(task.task_type)
        stats.level.finished(at, False, None)
        stats.failures.observe(1.0)

    @hookimpl
    def hivebus_status(self) -> dict[str, JsonValue]:
        return self.report

    # --- the evaluation, every interval_s -------------------------------------------------

    async def evaluate(self) -> None:
        ctx, book = self.context, self.book
        if ctx is None or book is None:
            return
        await book.recall()  # once: alerts left firing by an earlier run get resolved
        now = self.clock()
        wanted, figures, breached, anomalous, worst_burn = self._findings(now)
        for fingerprint, (severity, summary, details) in wanted.items():
            if await book.fire(severity, summary, fingerprint=fingerprint, details=details):
                self.alerts_fired += 1
        for fingerprint in book.firing():
            if fingerprint not in wanted and await book.resolve(fingerprint):
                self.alerts_resolved += 1
        pressures = self._pressures(ctx, now)
        if self.settings.scaling.enabled:
            for signal in self.scaler.decide(pressures, now):
                await self._signal(ctx, signal, now)
        starved = [
            ",".join(p.capabilities) or "*"
            for p in pressures
            if self.scaler.wants_more(p)  # work waiting that the agents cannot keep up with
        ]
        self.report = self._report(
            now, figures, breached, anomalous, worst_burn, starved, len(pressures)
        )

    def _findings(
        self, now: float
    ) -> tuple[Wanted, dict[str, JsonValue], list[str], list[str], float]:
        s = self.settings
        a = s.anomaly
        wanted: Wanted = {}
        figures: dict[str, JsonValue] = {}
        breached: list[str] = []
        anomalous: list[str] = []
        worst_burn = 0.0
        for task_type, stats in self.types.items():
            objective = s.objective_for(task_type)
            numbers = stats.level.figures(now, objective)
            worst_burn = max(worst_burn, stats.level.burn(now, s.short_window_s, objective))
            for breach in stats.level.breaches(now, objective):
                if breach.kind != "error_budget":
                    breached.append(task_type)
                details = {"task_type": task_type, "objective": breach.kind, **breach.details}
                wanted[f"production:slo:{task_type}:{breach.kind}"] = (
                    breach.severity,
                    f"{task_type}: {breach.summary}",
                    details,
                )
            if a.enabled:
                checks = (
                    ("duration", stats.durations, "durations"),
                    ("failure_rate", stats.failures, "failure rate"),
                )
                for kind, baseline, what in checks:
                    if baseline.anomalous(a.warmup):
                        anomalous.append(task_type)
                        evidence = baseline.evidence()
                        wanted[f"production:anomaly:{task_type}:{kind}"] = (
                            "warning",
                            f"{task_type}: {what} {evidence['recent']} against a baseline of "
                            f"{evidence['baseline_mean']} (sd {evidence['baseline_stddev']})",
                            {"task_type": task_type, "series": kind, **evidence},
                        )
            numbers["anomalous"] = task_type in anomalous
            figures[task_type] = numbers
        return wanted, figures, sorted(set(breached)), sorted(set(anomalous)), worst_burn

    def _pressures(self, ctx: PluginContext, now: float) -> list[Pressure]:
        limit = self.settings.scaling.max_queued_scanned
        queued = ctx.tasks(TaskStatus.QUEUED, limit=limit)
        return pressures(queued, ctx.capacity(), now, self.settings.max_task_types)

    async def _signal(self, ctx: PluginContext, signal: Signal, now: float) -> None:
        assert self.claims is not None
        won, at = await self.claims.claim(signal.capabilities, signal.direction, now)
        self.scaler.signalled(signal.capabilities, at)  # cool down, whoever sent it
        if not won:
            return
        evidence = signal.pressure.evidence()
        capabilities = list(signal.capabilities)
        ctx.scale(
            signal.direction, capabilities, signal.agents, reason=signal.reason, details=evidence
        )
        self.signals_sent += 1
        sent: dict[str, JsonValue] = {
            "direction": signal.direction,
            "at": now,
            "capabilities": list(capabilities),
            "agents": signal.agents,
            "reason": signal.reason,
            **evidence,
        }
        self.last_signals = [sent, *self.last_signals][:10]
        log.info("scaling signal", extra=sent)

    def _report(
        self,
        now: float,
        figures: dict[str, JsonValue],
        breached: list[str],
        anomalous: list[str],
        worst_burn: float,
        starved: list[str],
        capability_sets: int,
    ) -> dict[str, JsonValue]:
        s = self.settings
        tracked = len(figures)
        budget = max(0.0, 1 - worst_burn / s.burn_rate_threshold)
        components = [
            fraction_fine("service_levels", tracked, breached, "latency objectives missed"),
            Component(
                "error_budget",
                budget,
                f"worst short-window burn rate {worst_burn:.2f}x "
                f"(alert at {s.burn_rate_threshold:g}x)",
            ),
            fraction_fine("anomalies", tracked, anomalous, "anomalous task types"),
            fraction_fine("capacity", capability_sets, starved, "capability sets short"),
        ]
        value, parts = score(components)
        book = self.book
        firing: list[JsonValue] = [*book.firing()] if book else []
        return {
            "health_score": value,
            "components": parts,
            "task_types": figures,
            "task_types_forgotten": self.types.forgotten,
            "alerts_firing": firing,
            "alerts_fired": self.alerts_fired,
            "alerts_resolved": self.alerts_resolved,
            "scaling_signals": self.signals_sent,
            "last_signals": list(self.last_signals),
            "evaluated_at": now,
        }
