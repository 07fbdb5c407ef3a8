"""Time spent in each plugin's hooks on this core, read from the host at scrape time.

The host times every hook call; the figures are sums since start, so they are exported as a
summary (``_count`` and ``_sum``): ``rate(_sum) / rate(_count)`` is the mean time per call.
Labels are bounded by the loaded plugins and the hooks they implement.
"""

from __future__ import annotations

from collections.abc import Iterator

from hivebus_hookspecs import PluginContext
from prometheus_client.core import Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

__all__ = ["HookTimeCollector"]


class HookTimeCollector(Collector):
    def __init__(self, context: PluginContext) -> None:
        self._context = context

    def describe(self) -> Iterator[Metric]:
        return iter([self._family()])

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for timed in self._context.hook_times():
            family.add_metric([timed.plugin, timed.hook], timed.calls, timed.seconds)
        return iter([family])

    @staticmethod
    def _family() -> SummaryMetricFamily:
        return SummaryMetricFamily(
            "hivebus_plugin_hook_duration_seconds",
            "Time each plugin's hooks took on this core, awaited results included.",
            labels=["plugin", "hook"],
        )
