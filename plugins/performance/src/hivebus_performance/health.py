"""Gauges from the core's own status report: its health, its plugins', its state buckets'.

The report is asynchronous and a scrape is not, so a timer of the host refreshes a copy every
``refresh_s`` and scrapes read the copy. Labels are bounded: four health values, the loaded
plugins, the three state buckets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hivebus_hookspecs import HealthStatus
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["HEALTH_VALUES", "HealthCollector"]

HEALTH_VALUES = tuple(status.value for status in HealthStatus)


class HealthCollector(Collector):
    def __init__(self) -> None:
        self.status: dict[str, Any] | None = None

    def refresh(self, status: dict[str, Any]) -> None:
        self.status = status

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(read=True))

    def _families(self, read: bool = False) -> list[Metric]:
        info = GaugeMetricFamily(
            "hivebus_core_info",
            "This core replica (always 1).",
            labels=["orchestrator_id", "state"],
        )
        core = GaugeMetricFamily(
            "hivebus_core_health",
            "1 for the core's health status (healthy, degraded, unhealthy, critical), else 0.",
            labels=["status"],
        )
        plugins = GaugeMetricFamily(
            "hivebus_plugin_health",
            "1 for each loaded plugin's health status, else 0.",
            labels=["plugin", "status"],
        )
        replicas = GaugeMetricFamily(
            "hivebus_state_bucket_replicas",
            "Replicas a JetStream state bucket is configured with.",
            labels=["bucket"],
        )
        current = GaugeMetricFamily(
            "hivebus_state_bucket_current_replicas",
            "Replicas of a state bucket up to date, the leader included (0 without a leader).",
            labels=["bucket"],
        )
        leader = GaugeMetricFamily(
            "hivebus_state_bucket_leader",
            "1 while a state bucket has a leader (a JetStream quorum), else 0.",
            labels=["bucket"],
        )
        families: list[Metric] = [info, core, plugins, replicas, current, leader]
        status = self.status
        if not read or status is None:
            return families
        state = status.get("state") or {}
        info.add_metric([str(status.get("orchestrator_id")), str(state.get("kind", "-"))], 1)
        for value in HEALTH_VALUES:
            core.add_metric([value], 1 if status.get("health_status") == value else 0)
        for name, health in (status.get("plugins") or {}).items():
            for value in HEALTH_VALUES:
                plugins.add_metric([name, value], 1 if health == value else 0)
        for bucket, seen in (state.get("buckets") or {}).items():
            replicas.add_metric([bucket], seen["replicas"])
            current.add_metric([bucket], seen["current"])
            leader.add_metric([bucket], 1 if seen["leader"] else 0)
        return families
