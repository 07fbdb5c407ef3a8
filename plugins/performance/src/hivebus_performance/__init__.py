"""Prometheus metrics for hivebus: lifecycle counters, latencies, agents, queue and health.

The entry point names the ``PerformancePlugin`` class: each core builds its own instance, whose
registry, metrics and HTTP endpoint are created at ``hivebus_startup`` and the endpoint is
closed at shutdown.
"""

from .gauges import OrchestratorCollector
from .health import HealthCollector
from .metrics import DEFAULT_BUCKETS, WAIT_BUCKETS, Metrics
from .plugin import NAME, PerformancePlugin, PerformanceSettings

__all__ = [
    "DEFAULT_BUCKETS",
    "NAME",
    "WAIT_BUCKETS",
    "HealthCollector",
    "Metrics",
    "OrchestratorCollector",
    "PerformancePlugin",
    "PerformanceSettings",
]
