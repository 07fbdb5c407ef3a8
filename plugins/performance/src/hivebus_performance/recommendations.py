"""Advice for operators, from what the bus shows, each with the figures behind it.

Three kinds: tasks needing a capability wait while every agent offering it is busy (or none
does): add agents with it; an agent declines most of the offers it gets; a plugin's hooks take
most of the time requests spend. Judged on the last ``window_s`` by the evaluation timer, never
in a hook; the status shows the latest list.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping

from hivebus_hookspecs import CapacityGroup, HookTime
from pydantic import JsonValue

__all__ = [
    "REQUEST_HOOKS",
    "HookShare",
    "OfferLog",
    "declines",
    "dominant_hooks",
    "shortages",
]

Recommendation = dict[str, JsonValue]

REQUEST_HOOKS = frozenset(
    {"hivebus_agent_register", "hivebus_task_delegate", "hivebus_select_agent"}
)
"""Hooks a request waits for (status and health hooks only slow status requests)."""


def shortages(
    capacity: Iterable[CapacityGroup], waiting: Mapping[str, int]
) -> list[Recommendation]:
    """Capabilities with waiting tasks and no free agent offering them, most waiting first.

    Agents offering a capability are the live ones not quarantined (``capacity``: summed by
    exact capability set, no view per agent) whose set holds it.
    """
    holders: dict[str, list[CapacityGroup]] = {}
    for group in capacity:
        if group.agents:
            for capability in group.capabilities:
                holders.setdefault(capability, []).append(group)
    found: list[Recommendation] = []
    for capability, count in sorted(waiting.items(), key=lambda item: (-item[1], item[0])):
        if capability == "*" or count <= 0:
            continue
        offering = holders.get(capability, [])
        agents = sum(g.agents for g in offering)
        busy = sum(g.full for g in offering)
        if busy < agents:
            continue  # someone has room: the wait is short, or a choice of placement
        summary = (
            f"{count} tasks need {capability} and "
            + (f"all {agents} agents with it are busy" if agents else "no agent has it")
            + f": add agents with {capability}"
        )
        found.append(
            {
                "kind": "add_agents",
                "capability": capability,
                "summary": summary,
                "evidence": {
                    "waiting": count,
                    "agents": agents,
                    "busy": busy,
                    "slots": sum(g.slots for g in offering),
                },
            }
        )
    return found


class OfferLog:
    """Offers each agent accepted or declined within the window."""

    def __init__(self, window_s: float, limit: int = 20_000) -> None:
        self.window_s = window_s
        self._items: deque[tuple[float, str, str]] = deque(maxlen=limit)

    def add(self, agent_id: str, outcome: str, at: float | None = None) -> None:
        self._items.append((time.time() if at is None else at, agent_id, outcome))

    def counts(self, now: float | None = None) -> dict[str, Counter[str]]:
        since = (time.time() if now is None else now) - self.window_s
        while self._items and self._items[0][0] < since:
            self._items.popleft()
        by_agent: dict[str, Counter[str]] = {}
        for _, agent_id, outcome in self._items:
            by_agent.setdefault(agent_id, Counter())[outcome] += 1
        return by_agent


def declines(log: OfferLog, min_offers: int) -> list[Recommendation]:
    """Agents that refused or let time out most of at least ``min_offers`` offers."""
    found: list[Recommendation] = []
    for agent_id, seen in sorted(log.counts().items()):
        offers = sum(seen.values())
        declined = seen["refused"] + seen["timeout"]
        if offers < min_offers or declined * 2 <= offers:
            continue
        found.append(
            {
                "kind": "agent_declines",
                "agent_id": agent_id,
                "summary": f"agent {agent_id} declined {declined} of its last {offers} offers: "
                "check it is healthy and that its max_tasks matches what it can take",
                "evidence": {
                    "offers": offers,
                    "accepted": seen["accepted"],
                    "refused": seen["refused"],
                    "timeout": seen["timeout"],
                    "window_s": log.window_s,
                },
            }
        )
    return found


class HookShare:
    """Each plugin's share of request time over the window, from cumulative hook times and
    the cumulative time delegations took to be placed."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._snapshots: deque[tuple[float, dict[str, tuple[int, float]], float]] = deque()

    def add(self, times: Iterable[HookTime], placement_s: float, now: float | None = None) -> None:
        per_plugin: dict[str, tuple[int, float]] = {}
        for timed in times:
            if timed.hook in REQUEST_HOOKS:
                calls, seconds = per_plugin.get(timed.plugin, (0, 0.0))
                per_plugin[timed.plugin] = (calls + timed.calls, seconds + timed.seconds)
        now = time.time() if now is None else now
        self._snapshots.append((now, per_plugin, placement_s))
        while len(self._snapshots) > 2 and self._snapshots[1][0] <= now - self.window_s:
            self._snapshots.popleft()

    def shares(self) -> dict[str, tuple[int, float, float]]:
        """By plugin: calls, seconds, and share of request time within the window."""
        if len(self._snapshots) < 2:
            return {}
        _, first, placed_first = self._snapshots[0]
        _, last, placed_last = self._snapshots[-1]
        deltas = {
            plugin: (
                calls - first.get(plugin, (0, 0.0))[0],
                seconds - first.get(plugin, (0, 0.0))[1],
            )
            for plugin, (calls, seconds) in last.items()
        }
        total = sum(seconds for _, seconds in deltas.values()) + (placed_last - placed_first)
        if total <= 0:
            return {}
        return {p: (calls, seconds, seconds / total) for p, (calls, seconds) in deltas.items()}


def dominant_hooks(share: HookShare, min_calls: int) -> list[Recommendation]:
    found: list[Recommendation] = []
    for plugin, (calls, seconds, part) in sorted(share.shares().items()):
        if calls < min_calls or part <= 0.5:
            continue
        found.append(
            {
                "kind": "slow_plugin",
                "plugin": plugin,
                "summary": f"plugin {plugin}'s hooks take {part:.0%} of request time: make them "
                "cheaper (move work to a timer) or disable the plugin",
                "evidence": {
                    "share": round(part, 3),
                    "calls": calls,
                    "seconds": round(seconds, 6),
                    "mean_ms": round(1000 * seconds / calls, 3),
                    "window_s": share.window_s,
                },
            }
        )
    return found
