"""The agent registry and its capability index.

Selection must stay cheap at tens of thousands of agents, so the registry never scans all
agents: for each capability it keeps the agents that hold it *and have a free slot*, in the
order they last changed load. Selection walks the rarest required capability's free set in
that order, which yields idle agents, idle longest first, without sorting.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hivebus_hookspecs.models import AgentRole, AgentState, AgentView

__all__ = ["AgentRecord", "AgentRegistry"]


@dataclass(slots=True, eq=False)
class AgentRecord:
    agent_id: str
    role: AgentRole
    capabilities: frozenset[str]
    max_tasks: int
    metadata: dict[str, Any]
    registered_at: float
    last_seen: float
    state: AgentState = AgentState.ACTIVE
    tasks: set[str] = field(default_factory=set)
    """Tasks offered to or held by the agent: an offer in flight occupies a slot."""
    context_window_usage: float | None = None
    declared_capabilities: tuple[str, ...] = ()

    @property
    def load(self) -> int:
        return len(self.tasks)

    @property
    def has_free_slot(self) -> bool:
        return self.state is AgentState.ACTIVE and len(self.tasks) < self.max_tasks

    def view(self) -> AgentView:
        return AgentView(
            agent_id=self.agent_id,
            role=self.role,
            capabilities=list(self.declared_capabilities),
            max_tasks=self.max_tasks,
            active_tasks=len(self.tasks),
            state=self.state,
            metadata=self.metadata,
            context_window_usage=self.context_window_usage,
            registered_at=self.registered_at,
            last_seen=self.last_seen,
        )


class AgentRegistry:
    """Agents by id, plus the per-capability index of agents with a free slot."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentRecord] = {}
        # capability -> agents holding it, in insertion order (dicts as ordered sets)
        self._holders: dict[str, dict[str, None]] = {}
        # capability -> agents holding it that have a free slot, oldest change first
        self._free: dict[str, dict[str, None]] = {}
        # agents with no capabilities still take tasks that require none
        self._free_any: dict[str, None] = {}

    def __len__(self) -> int:
        return len(self._agents)

    def __iter__(self) -> Iterator[AgentRecord]:
        return iter(self._agents.values())

    def get(self, agent_id: str) -> AgentRecord | None:
        return self._agents.get(agent_id)

    def count_active(self) -> int:
        return sum(1 for a in self._agents.values() if a.state is AgentState.ACTIVE)

    def add(self, agent: AgentRecord) -> None:
        self.remove(agent.agent_id)
        self._agents[agent.agent_id] = agent
        for cap in agent.capabilities:
            self._holders.setdefault(cap, {})[agent.agent_id] = None
        self.touch_load(agent)

    def remove(self, agent_id: str) -> AgentRecord | None:
        agent = self._agents.pop(agent_id, None)
        if agent is not None:
            self._unindex(agent)
        return agent

    def mark_offline(self, agent: AgentRecord) -> None:
        """Keep the record (for status and a later re-registration) but stop offering to it."""
        agent.state = AgentState.OFFLINE
        self._unindex(agent)

    def _unindex(self, agent: AgentRecord) -> None:
        self._unindex_free(agent)
        for cap in agent.capabilities:
            holders = self._holders.get(cap)
            if holders is not None:
                holders.pop(agent.agent_id, None)
                if not holders:
                    del self._holders[cap]

    def touch_load(self, agent: AgentRecord) -> None:
        """Re-index ``agent`` after its load changed: it moves to the back of the free order."""
        self._unindex_free(agent)
        if agent.has_free_slot:
            for cap in agent.capabilities:
                self._free.setdefault(cap, {})[agent.agent_id] = None
            self._free_any[agent.agent_id] = None

    def _unindex_free(self, agent: AgentRecord) -> None:
        self._free_any.pop(agent.agent_id, None)
        for cap in agent.capabilities:
            free = self._free.get(cap)
            if free is not None:
                free.pop(agent.agent_id, None)

    def candidates(
        self, required: frozenset[str], limit: int, exclude: frozenset[str] = frozenset()
    ) -> list[AgentRecord]:
        """Up to ``limit`` live agents with every capability in ``required`` and a free slot.

        Ordered least loaded first (by fraction of slots used), then idle longest.
        """
        if required:
            smallest: dict[str, None] | None = None
            for cap in required:
                free = self._free.get(cap)
                if not free:
                    return []
                if smallest is None or len(free) < len(smallest):
                    smallest = free
            pool: dict[str, None] = smallest or {}
        else:
            pool = self._free_any
        idle: list[AgentRecord] = []
        busy: list[AgentRecord] = []
        for agent_id in pool:
            if agent_id in exclude:
                continue
            agent = self._agents[agent_id]
            if not required <= agent.capabilities:
                continue
            if agent.load == 0:
                idle.append(agent)
                if len(idle) >= limit:
                    return idle
            else:
                busy.append(agent)
        # Python's sort is stable, so equal loads keep the idle-longest order of the index.
        busy.sort(key=lambda a: a.load / a.max_tasks)
        return (idle + busy)[:limit]

    def free_agents(self) -> list[AgentRecord]:
        """Live agents with a free slot, idle longest first."""
        return [self._agents[agent_id] for agent_id in self._free_any]

    def capability_counts(self) -> dict[str, int]:
        return {cap: len(holders) for cap, holders in sorted(self._holders.items())}
