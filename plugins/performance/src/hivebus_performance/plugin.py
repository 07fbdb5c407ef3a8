"""The performance plugin: lifecycle events in, Prometheus metrics, alerts and advice out."""

from __future__ import annotations

import errno
import logging
import os
import time
from typing import Any

from hivebus_hookspecs import (
    Event,
    EventName,
    OrchestratorView,
    PluginContext,
    TaskView,
    hookimpl,
)
from hivebus_hookspecs.context import AlertBook
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from pydantic import JsonValue

from .build import BuildInfo
from .exporter import MetricsServer
from .gauges import OrchestratorCollector
from .health import HealthCollector
from .hooktime import HookTimeCollector
from .latency import Latency
from .metrics import Metrics
from .recommendations import HookShare, OfferLog, capacity, declines, dominant_hooks
from .resources import ResourceCollector, ResourceSampler
from .settings import PerformanceSettings
from .thresholds import Figures, judge
from .window import Window

__all__ = ["NAME", "MetricsPortUnavailable", "PerformancePlugin"]

NAME = "performance"

log = logging.getLogger("hivebus.performance")


class MetricsPortUnavailable(Exception):
    """The metrics endpoint could not be bound: raised from start-up, after everything else
    started, so the host records the reason (``hivebus plugins``) and the core serves on."""


class PerformancePlugin:
    """One instance per core, started and stopped with it."""

    def __init__(self) -> None:
        self.settings = PerformanceSettings()
        self.context: PluginContext | None = None
        self.registry: CollectorRegistry | None = None
        self.metrics: Metrics | None = None
        self.latency: Latency | None = None
        self.health: HealthCollector | None = None
        self.server: MetricsServer | None = None
        self.sampler: ResourceSampler | None = None
        self.book: AlertBook | None = None
        self.finished: Window | None = None
        self.offers: OfferLog | None = None
        self.hook_share: HookShare | None = None
        self.recommendations: list[dict[str, JsonValue]] = []
        self.evaluated_at: float | None = None
        self.alerts_fired = 0
        self.error: str | None = None
        self.replica = ""
        self.unhealthy = False
        """Set when the settings are refused: nothing is measured then."""

    @hookimpl
    async def hivebus_startup(self, orchestrator: OrchestratorView, context: PluginContext) -> None:
        await self._stop_server()  # a core that never shut down must not keep the port
        self.error = None
        self.unhealthy = False
        try:
            self.settings = settings = context.settings(PerformanceSettings)
        except ValueError as exc:
            self.error = f"invalid settings: {exc}"
            self.unhealthy = True
            raise
        self.context = context
        self.replica = orchestrator.orchestrator_id
        registry = self.registry = CollectorRegistry()
        self.metrics = Metrics(registry, settings.buckets, settings.max_task_types)
        self.latency = Latency(self.metrics, Window(settings.window_s))
        self.finished = Window(settings.window_s)
        self.offers = OfferLog(settings.window_s)
        self.hook_share = HookShare(settings.window_s)
        self.sampler = ResourceSampler(context.data_dir)
        self.book = context.alert_book(
            stale_after_s=max(60.0, settings.interval_s * 4), cooldown_s=settings.alert_cooldown_s
        )
        registry.register(OrchestratorCollector(orchestrator, context, settings.max_capabilities))
        health = self.health = HealthCollector()
        registry.register(health)
        registry.register(HookTimeCollector(context))
        registry.register(ResourceCollector(self.sampler))
        registry.register(BuildInfo(orchestrator.orchestrator_id))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)

        async def refresh() -> None:
            health.refresh(await context.status())

        context.every(settings.refresh_s, refresh, name="health-gauges")
        context.every(settings.interval_s, self.evaluate, name="evaluate")
        await self._serve(registry)

    async def _serve(self, registry: CollectorRegistry) -> None:
        server = MetricsServer(registry)
        where = f"{self.settings.host}:{self.settings.port}"
        try:
            await server.start(self.settings.host, self.settings.port)
        except OSError as exc:
            # Metrics are still counted, alerts and advice still made; only the endpoint is
            # missing. Raised so the host records why, shown by `hivebus plugins`.
            why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            self.error = f"cannot serve metrics on {where}: {why}"
            if exc.errno == errno.EADDRINUSE:
                self.error += (
                    " (another core on this host? give each its own port: "
                    "[plugin_config.performance] port, or HIVEBUS_PLUGIN_CONFIG__PERFORMANCE__PORT)"
                )
            log.error(self.error)
            raise MetricsPortUnavailable(self.error) from None
        self.server = server
        log.info("serving metrics", extra={"url": server.url})

    # --- hooks: cheap, constant time --------------------------------------------------

    @hookimpl(trylast=True)
    def hivebus_task_delegate(self, task: TaskView) -> None:
        # trylast: counted only once every other plugin had its chance to veto.
        if self.metrics is not None:
            self.metrics.delegations.inc()
        if self.latency is not None:
            self.latency.admitted(task)

    @hookimpl
    def hivebus_event(self, event: Event) -> None:
        if self.metrics is None or self.latency is None or self.offers is None:
            return
        self.metrics.observe(event)
        self.latency.observe(event)
        if event.agent_id is None:
            return
        if event.event is EventName.TASK_ASSIGNED:
            self.offers.add(event.agent_id, "accepted", event.timestamp)
        elif event.event is EventName.TASK_DECLINED:
            outcome = str((event.model_extra or {}).get("outcome"))
            self.offers.add(event.agent_id, outcome, event.timestamp)

    @hookimpl
    def hivebus_task_assigned(self, task: TaskView) -> None:
        if self.latency is not None:
            self.latency.assigned(task)

    @hookimpl
    def hivebus_task_completed(self, task: TaskView) -> None:
        self._finished(task, "completed")

    @hookimpl
    def hivebus_task_failed(self, task: TaskView) -> None:
        self._finished(task, "failed")

    def _finished(self, task: TaskView, outcome: str) -> None:
        if self.metrics is not None and self.finished is not None:
            self.metrics.finished(task, outcome)
            self.finished.add(1.0 if outcome == "failed" else 0.0)

    @hookimpl
    def hivebus_status(self) -> dict[str, Any]:
        server = self.server
        sample = self.sampler.last if self.sampler is not None else None
        return {
            "url": server.url if server else None,
            "host": server.host if server else self.settings.host,
            "port": server.port if server else None,
            "scrapes": server.scrapes if server else 0,
            "error": self.error,
            "totals": {name: self._total(name) for name in _TOTALS},
            "resources": None
            if sample is None
            else {
                "cpu_percent": _round(sample.cpu_percent),
                "memory_mb": _round(sample.memory_mb),
                "memory_percent": _round(sample.memory_percent),
                "disk_used_percent": _round(sample.disk_used_percent),
            },
            "alerts_firing": self.book.firing() if self.book is not None else [],
            "recommendations": self.recommendations,
            "evaluated_at": self.evaluated_at,
        }

    @hookimpl
    def hivebus_health(self) -> str:
        if self.unhealthy:
            return "unhealthy"
        return "degraded" if self.error else "healthy"

    @hookimpl
    async def hivebus_shutdown(self) -> None:
        await self._stop_server()

    # --- the evaluation timer ---------------------------------------------------------

    async def evaluate(self) -> None:
        """Sample resources, fire or resolve each threshold's alert, renew the advice."""
        context, book, sampler = self.context, self.book, self.sampler
        assert context is not None
        assert book is not None
        assert sampler is not None
        assert self.latency is not None
        assert self.finished is not None
        assert self.offers is not None
        assert self.hook_share is not None
        settings = self.settings
        sample = await sampler.sample()
        outcomes = self.finished.values()
        delegations = self.latency.recent.values()
        p95 = Window.quantile(delegations, 0.95)
        figures = Figures(
            resources=sample,
            finished=len(outcomes),
            failed=int(sum(outcomes)),
            delegations=len(delegations),
            delegation_p95_ms=None if p95 is None else p95 * 1000,
        )
        for check in judge(settings, figures, self.replica):
            if check.breached:
                if await book.fire(
                    "warning", check.summary, fingerprint=check.fingerprint, details=check.details
                ):
                    self.alerts_fired += 1
            else:
                await book.resolve(check.fingerprint, details=check.details)
        self.hook_share.add(context.hook_times(), self.latency.total_s)
        queue = context.queue_depth()
        found = capacity(context.agents(), queue.get("by_capability", {}))
        found += declines(self.offers, settings.min_offers)
        found += dominant_hooks(self.hook_share, settings.min_tasks)
        self.recommendations = found[: settings.max_recommendations]
        self.evaluated_at = time.time()

    async def _stop_server(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()

    def _total(self, name: str) -> int:
        if self.registry is None:
            return 0
        return int(self.registry.get_sample_value(f"hivebus_{name}_total") or 0)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


_TOTALS = ("delegations", "assignments", "completions", "failures", "requeues")
