"""Prometheus metrics for hivebus: lifecycle counters, task durations, agents and queue depth.

The entry point names the ``PerformancePlugin`` class: each core builds its own instance, whose
registry, metrics and HTTP endpoint are created at ``hivebus_startup`` and the endpoint is
closed at shutdown.
"""

from .metrics import DEFAULT_BUCKETS, Metrics, OrchestratorCollector
from .plugin import NAME, PerformancePlugin, PerformanceSettings

__all__ = [
    "DEFAULT_BUCKETS",
    "NAME",
    "Metrics",
    "OrchestratorCollector",
    "PerformancePlugin",
    "PerformanceSettings",
]
