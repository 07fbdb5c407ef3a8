"""The performance plugin: lifecycle events in, Prometheus metrics out."""

from __future__ import annotations

import errno
import logging
from typing import Any

from hivebus_hookspecs import (
    Event,
    OrchestratorView,
    PluginConfig,
    PluginContext,
    TaskView,
    hookimpl,
)
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field

from .exporter import MetricsServer
from .gauges import OrchestratorCollector
from .health import HealthCollector
from .latency import Latency
from .metrics import DEFAULT_BUCKETS, Metrics

__all__ = ["NAME", "PerformancePlugin", "PerformanceSettings"]

NAME = "performance"

log = logging.getLogger("hivebus.performance")


class PerformanceSettings(BaseModel):
    """``[plugin_config.performance]`` in the hivebus configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    """``0`` picks a free port; the bound one is in the status contribution."""
    buckets: tuple[float, ...] = Field(default=DEFAULT_BUCKETS, min_length=1)
    """Histogram buckets for task durations, in seconds."""
    refresh_s: float = Field(default=5.0, gt=0)
    """How often the health gauges (core, plugins, state buckets) are read from the status."""
    max_capabilities: int = Field(default=50, ge=1, le=1000)
    """Capability label values exported at most (those with the most waiting tasks)."""


class PerformancePlugin:
    """One instance per process, started and stopped with the core that loads it."""

    def __init__(self) -> None:
        self.settings = PerformanceSettings()
        self.registry: CollectorRegistry | None = None
        self.metrics: Metrics | None = None
        self.latency: Latency | None = None
        self.health: HealthCollector | None = None
        self.server: MetricsServer | None = None
        self.error: str | None = None

    @hookimpl
    async def hivebus_startup(
        self, orchestrator: OrchestratorView, config: PluginConfig, context: PluginContext
    ) -> None:
        await self._stop_server()  # a core that never shut down must not keep the port
        self.error = None
        try:
            self.settings = PerformanceSettings.model_validate(config.plugin_settings(NAME))
        except ValueError as exc:
            self.error = f"invalid settings: {exc}"
            raise
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry, self.settings.buckets)
        self.latency = Latency(self.metrics, context.task)
        self.registry.register(
            OrchestratorCollector(orchestrator, context, self.settings.max_capabilities)
        )
        health = self.health = HealthCollector()
        self.registry.register(health)

        async def refresh() -> None:
            health.refresh(await context.status())

        context.every(self.settings.refresh_s, refresh, name="health-gauges")
        server = MetricsServer(self.registry)
        where = f"{self.settings.host}:{self.settings.port}"
        try:
            await server.start(self.settings.host, self.settings.port)
        except OSError as exc:
            # Metrics are still counted and visible in the status; only the endpoint is missing.
            self.error = f"cannot serve metrics on {where}: {exc.strerror or exc}"
            if exc.errno == errno.EADDRINUSE:
                self.error += (
                    " (another core on this host? give each its own port: "
                    "[plugin_config.performance] port, or HIVEBUS_PLUGIN_CONFIG__PERFORMANCE__PORT)"
                )
            log.error(self.error)
            return
        self.server = server
        log.info("serving metrics", extra={"url": server.url})

    @hookimpl(trylast=True)
    def hivebus_task_delegate(self, task: TaskView) -> None:
        # trylast: counted only once every other plugin had its chance to veto.
        if self.metrics is not None:
            self.metrics.delegations.inc()
        if self.latency is not None:
            self.latency.admitted(task)

    @hookimpl
    def hivebus_event(self, event: Event) -> None:
        if self.metrics is not None:
            self.metrics.observe(event)
        if self.latency is not None:
            self.latency.observe(event)

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
        }

    @hookimpl
    def hivebus_health(self) -> str:
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
