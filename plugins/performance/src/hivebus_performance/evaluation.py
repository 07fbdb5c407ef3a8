"""The evaluation timer's work: sample resources, judge thresholds, renew the advice.

Hooks only feed it (``finished``, ``offers``: appends, constant time); every ``interval_s`` the
host's timer calls ``evaluate``, which does the work and keeps its results for the status.
"""

from __future__ import annotations

import time

from hivebus_hookspecs import PluginContext
from pydantic import JsonValue

from .latency import Latency
from .recommendations import HookShare, OfferLog, declines, dominant_hooks, shortages
from .resources import ResourceSampler
from .settings import PerformanceSettings
from .thresholds import Figures, judge
from .window import Window

__all__ = ["Evaluator"]


class Evaluator:
    def __init__(
        self,
        context: PluginContext,
        settings: PerformanceSettings,
        latency: Latency,
        replica: str,
    ) -> None:
        self.context = context
        self.settings = settings
        self.latency = latency
        self.replica = replica
        self.book = context.alert_book(
            stale_after_s=max(60.0, settings.interval_s * 4), cooldown_s=settings.alert_cooldown_s
        )
        self.sampler = ResourceSampler(context.data_dir)
        self.finished = Window(settings.window_s)
        """1 per failed task, 0 per completed one: the mean is the error rate."""
        self.offers = OfferLog(settings.window_s)
        self.hook_share = HookShare(settings.window_s)
        self.recommendations: list[dict[str, JsonValue]] = []
        self.evaluated_at: float | None = None
        self.alerts_fired = 0

    async def evaluate(self) -> None:
        """Sample resources, fire or resolve each threshold's alert, renew the advice."""
        settings, context = self.settings, self.context
        sample = await self.sampler.sample()
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
            if not check.breached:
                await self.book.resolve(check.fingerprint, details=check.details)
            elif await self.book.fire(
                "warning", check.summary, fingerprint=check.fingerprint, details=check.details
            ):
                self.alerts_fired += 1
        self.hook_share.add(context.hook_times(), self.latency.total_s)
        waiting = context.queue_depth().get("by_capability", {})
        # Only a task waiting for a named capability can be short of agents.
        needed = any(count > 0 and cap != "*" for cap, count in waiting.items())
        found = shortages(context.capacity(), waiting) if needed else []
        found += declines(self.offers, settings.min_offers)
        found += dominant_hooks(self.hook_share, settings.min_tasks)
        self.recommendations = found[: settings.max_recommendations]
        self.evaluated_at = time.time()

    def report(self) -> dict[str, JsonValue]:
        """The status contribution's part: latest resources, alerts firing, advice."""
        sample = self.sampler.last
        return {
            "resources": None
            if sample is None
            else {
                "cpu_percent": _round(sample.cpu_percent),
                "memory_mb": _round(sample.memory_mb),
                "memory_percent": _round(sample.memory_percent),
                "disk_used_percent": _round(sample.disk_used_percent),
            },
            "alerts_firing": list(self.book.firing()),
            "recommendations": list(self.recommendations),
            "evaluated_at": self.evaluated_at,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
