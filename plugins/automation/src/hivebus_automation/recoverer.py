"""Acting on a failed attempt by its tier: retry, sleep-then-retry, or dead with an alert.

Only the replica that stored the failure sees it (its hook), so each failure is acted on once.
Manual alerts are level-triggered through the alert book: fired on every evaluation while the
task stays dead, resolved when someone retried it (or it is gone).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from hivebus_hookspecs import PluginContext, TaskStatus
from hivebus_hookspecs.context import AlertBook
from pydantic import JsonValue

from .inbox import Seen
from .recovery import Classifier, Tier, backoff
from .settings import RecoverySettings

__all__ = ["Recoverer"]

log = logging.getLogger("hivebus.automation")

Sleep = Callable[[str, str], Awaitable[object]]

MANUAL = "automation:manual:"


class Recoverer:
    def __init__(
        self, context: PluginContext, settings: RecoverySettings, book: AlertBook, sleep: Sleep
    ) -> None:
        self.context = context
        self.settings = settings
        self.classifier = Classifier.of(settings)
        self.book = book
        self.sleep = sleep
        self.tiers: Counter[str] = Counter()
        self.retried = 0
        self.manual: dict[str, tuple[str, dict[str, JsonValue]]] = {}
        """Dead tasks this replica alerted about: fingerprint -> (summary, details)."""

    async def failed(self, seen: Seen) -> None:
        tier = self.classifier.tier(seen.detail)
        self.tiers[tier.value] += 1
        error = (seen.detail or "")[:200]
        ctx = self.context
        if tier is Tier.MANUAL:
            if seen.status in (TaskStatus.FAILED.value, TaskStatus.RETRYING.value):
                await ctx.dead_letter(seen.task_id, f"manual recovery: {error}")
            summary = f"task {seen.task_id} needs a person: {error}"
            details: dict[str, JsonValue] = {
                "task_id": seen.task_id,
                "agent_id": seen.agent_id,
                "error": error,
                "tier": tier.value,
            }
            self.manual[MANUAL + seen.task_id] = (summary, details)
            await self.book.fire(
                "critical", summary, fingerprint=MANUAL + seen.task_id, details=details
            )
            return
        if tier is Tier.ASSISTED and seen.agent_id:
            why = f"assisted recovery: {error}"
            if self.settings.assisted_action == "drain":
                await ctx.control(seen.agent_id, "drain", why)
            else:
                await self.sleep(seen.agent_id, why)
        if seen.core_retries or seen.status != TaskStatus.FAILED.value:
            return  # the core's retry policy decides; a dead task was given up on already
        if seen.attempts >= self.settings.max_attempts:
            return
        delay = backoff(self.settings, seen.attempts)
        await ctx.retry(seen.task_id, delay, reason=f"{tier.value} recovery: {error}")
        self.retried += 1
        log.info(
            "task retried",
            extra={"task_id": seen.task_id, "tier": tier.value, "delay_s": delay},
        )

    async def upkeep(self) -> None:
        """Keep manual alerts firing while their task is dead; resolve them once it is not."""
        for fingerprint, (summary, details) in list(self.manual.items()):
            task = self.context.task(fingerprint.removeprefix(MANUAL))
            if task is not None and task.status is TaskStatus.DEAD:
                await self.book.fire("critical", summary, fingerprint=fingerprint, details=details)
            else:
                await self.book.resolve(fingerprint)
                del self.manual[fingerprint]

    def report(self) -> dict[str, JsonValue]:
        return {
            "enabled": self.settings.enabled,
            "by_tier": dict(self.tiers),
            "retried": self.retried,
            "manual_alerts": list[JsonValue](sorted(self.manual)),
        }
