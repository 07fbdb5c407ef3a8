"""Prometheus metrics, resource and threshold alerts, and advice for operators of hivebus.

The entry point names the ``PerformancePlugin`` class: each core builds its own instance, whose
registry, metrics, timers and HTTP endpoint are created at ``hivebus_startup``; the endpoint is
closed at shutdown.
"""

from .gauges import OrchestratorCollector
from .health import HealthCollector
from .metrics import DEFAULT_BUCKETS, WAIT_BUCKETS, Metrics
from .plugin import NAME, MetricsPortUnavailable, PerformancePlugin
from .settings import PerformanceSettings

__all__ = [
    "DEFAULT_BUCKETS",
    "NAME",
    "WAIT_BUCKETS",
    "HealthCollector",
    "Metrics",
    "MetricsPortUnavailable",
    "OrchestratorCollector",
    "PerformancePlugin",
    "PerformanceSettings",
]
