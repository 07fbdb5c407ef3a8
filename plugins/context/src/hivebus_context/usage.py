"""Context-window monitoring: each agent's reported usage, and one alert per agent running full.

Agents report ``context_window_usage`` in their heartbeats; a timer reads it from the core
(``context_usage()``, no view per agent) and states, through the alert book, which agents are
at or past ``warning``: the book publishes one alert per agent across every replica and
``resolved`` once the usage drops. The severity is the one the usage had when the alert fired.
"""

from __future__ import annotations

from hivebus_hookspecs import PluginContext
from hivebus_hookspecs.context import AlertBook
from pydantic import JsonValue

__all__ = ["UsageMonitor", "fingerprint"]

MAX_LISTED = 100
"""Agents shown in the status, fullest first: bounded, however many there are."""


def fingerprint(agent_id: str) -> str:
    return f"context:usage:{agent_id}"


class UsageMonitor:
    def __init__(self, context: PluginContext, book: AlertBook, warning: float, critical: float):
        self._context = context
        self._book = book
        self._warning = warning
        self._critical = critical
        self.checks = 0
        self.usage: dict[str, float] = {}
        """The latest usage each live agent reported, fullest first (for the status)."""

    def _severity(self, usage: float) -> str | None:
        if usage >= self._critical:
            return "critical"
        if usage >= self._warning:
            return "warning"
        return None

    async def check(self) -> None:
        # A reading, not views: a view per agent would cost the loop ~50 ms at 10,000 agents.
        live = sorted(self._context.context_usage().items(), key=lambda item: (-item[1], item[0]))
        self.usage = dict(live)
        full: set[str] = set()
        for agent_id, usage in live:
            severity = self._severity(usage)
            if severity is not None:
                full.add(fingerprint(agent_id))
                await self._book.fire(
                    severity,
                    f"agent {agent_id} has used {usage:.0%} of its context window",
                    fingerprint=fingerprint(agent_id),
                    details=_details(agent_id, usage, self._warning, self._critical),
                )
        for known in self._book.firing():
            if known.startswith(fingerprint("")) and known not in full:
                await self._book.resolve(known)
        self.checks += 1

    def status(self) -> dict[str, JsonValue]:
        listed = dict(list(self.usage.items())[:MAX_LISTED])
        return {
            "agents": listed,  # type: ignore[dict-item]
            "reporting": len(self.usage),
            "checks": self.checks,
            "over_warning": sum(1 for u in self.usage.values() if u >= self._warning),
            "alerts_firing": sum(1 for f in self._book.firing() if f.startswith(fingerprint(""))),
        }


def _details(agent_id: str, usage: float, warning: float, critical: float) -> dict[str, JsonValue]:
    return {"agent_id": agent_id, "usage": usage, "warning": warning, "critical": critical}
