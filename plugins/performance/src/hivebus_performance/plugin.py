"""The performance plugin: lifecycle events in, Prometheus metrics, alerts and advice out."""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

from hivebus_hookspecs import (
    Event,
    EventName,
    OrchestratorView,
    PluginContext,
    TaskView,
    hookimpl,
)
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from .build import BuildInfo
from .evaluation import Evaluator
from .exporter import MetricsServer
from .gauges import OrchestratorCollector
from .health import HealthCollector
from .hooktime import HookTimeCollector
from .latency import Latency
from .metrics import Metrics
from .resources import ResourceCollector
from .settings import PerformanceSettings
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
        self.registry: CollectorRegistry | None = None
        self.metrics: Metrics | None = None
        self.latency: Latency | None = None
        self.evaluator: Evaluator | None = None
        self.server: MetricsServer | None = None
        self.error: str | None = None
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
        registry = self.registry = CollectorRegistry()
        self.metrics = Metrics(registry, settings.buckets, settings.max_task_types)
        self.latency = Latency(self.metrics, Window(settings.window_s))
        evaluator = self.evaluator = Evaluator(
            context, settings, self.latency, orchestrator.orchestrator_id
        )
        health = HealthCollector()
        for collector in (
            OrchestratorCollector(orchestrator, context, settings.max_capabilities),
            health,
            HookTimeCollector(context),
            ResourceCollector(evaluator.sampler),
            BuildInfo(orchestrator.orchestrator_id),
        ):
            registry.register(collector)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)

        async def refresh() -> None:
            health.refresh(await context.status())

        context.every(settings.refresh_s, refresh, name="health-gauges")
        context.every(settings.interval_s, evaluator.evaluate, name="evaluate")
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
        if self.metrics is not None and self.latency is not None:
            self.metrics.delegations.inc()
            self.latency.admitted(task)

    @hookimpl
    def hivebus_event(self, event: Event) -> None:
        if self.metrics is None or self.latency is None or self.evaluator is None:
            return
        self.metrics.observe(event)
        self.latency.observe(event)
        if event.agent_id is None:
            return
        if event.event is EventName.TASK_ASSIGNED:
            self.evaluator.offers.add(event.agent_id, "accepted", event.timestamp)
        elif event.event is EventName.TASK_DECLINED:
            outcome = str((event.model_extra or {}).get("outcome"))
            self.evaluator.offers.add(event.agent_id, outcome, event.timestamp)

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
        if self.metrics is not None and self.evaluator is not None:
            self.metrics.finished(task, outcome)
            self.evaluator.finished.add(1.0 if outcome == "failed" else 0.0)

    @hookimpl
    def hivebus_status(self) -> dict[str, Any]:
        server = self.server
        return {
            "url": server.url if server else None,
            "host": server.host if server else self.settings.host,
            "port": server.port if server else None,
            "scrapes": server.scrapes if server else 0,
            "error": self.error,
            "totals": {name: self._total(name) for name in _TOTALS},
            **(self.evaluator.report() if self.evaluator is not None else {}),
        }

    @hookimpl
    def hivebus_health(self) -> str:
        if self.unhealthy:
            return "unhealthy"
        return "degraded" if self.error else "healthy"

    @hookimpl
    async def hivebus_shutdown(self) -> None:
        await self._stop_server()

    async def _stop_server(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()

    def _total(self, name: str) -> int:
        if self.registry is None:
            return 0
        return int(self.registry.get_sample_value(f"hivebus_{name}_total") or 0)


_TOTALS = ("delegations", "assignments", "completions", "failures", "requeues")
