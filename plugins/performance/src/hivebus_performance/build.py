"""``hivebus_build_info``: which versions a replica runs, for dashboards and upgrade checks."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["BuildInfo"]

DISTRIBUTIONS = {"version": "hivebus", "hookspecs": "hivebus-hookspecs"}


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


class BuildInfo(Collector):
    """Versions are read once, at start: the installed distributions do not change under a
    running core."""

    def __init__(self, orchestrator_id: str) -> None:
        self._labels = {label: _version(dist) for label, dist in DISTRIBUTIONS.items()}
        self._labels["performance"] = _version("hivebus-performance")
        self._labels["python"] = platform.python_version()
        self._labels["orchestrator_id"] = orchestrator_id

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "hivebus_build_info",
            "1, labelled with the versions this core replica runs.",
            labels=list(self._labels),
        )
        family.add_metric(list(self._labels.values()), 1)
        return iter([family])
