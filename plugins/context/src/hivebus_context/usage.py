"""Context-window monitoring: each agent's reported usage, and one alert per agent running full.

Agents report ``context_window_usage`` in their heartbeats; a timer reads it from the core's
view and states, through the alert book, which agents are at or past ``warning``: the book
publishes one alert per agent across every replica and ``resolved`` once the usage drops.
The severity is the one the usage had when the alert fired.
"""

from __future__ import annotations

from hivebus_hookspecs import AgentState, AgentView, PluginContext
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
        live = [
            a
            for a in self._context.agents()
            if a.state is AgentState.ACTIVE and a.context_window_usage is not None
        ]
        live.sort(key=lambda a: (-(a.context_window_usage or 0.0), a.agent_id))
        self.usage = {a.agent_id: a.context_window_usage or 0.0 for a in live}
        full: set[str] = set()
        for agent in live:
            severity = self._severity(agent.context_window_usage or 0.0)
            if severity is not None:
                full.add(fingerprint(agent.agent_id))
                await self._book.fire(
                    severity,
                    f"agent {agent.agent_id} has used {agent.context_window_usage:.0%} of its "
                    "context window",
                    fingerprint=fingerprint(agent.agent_id),
                    details=_details(agent, self._warning, self._critical),
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


def _details(agent: AgentView, warning: float, critical: float) -> dict[str, JsonValue]:
    return {
        "agent_id": agent.agent_id,
        "usage": agent.context_window_usage,
        "warning": warning,
        "critical": critical,
    }
