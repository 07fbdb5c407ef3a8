"""The agent registry and its capability index.

Selection must stay cheap at tens of thousands of agents, so the registry never scans all
agents: for each capability it keeps the agents that hold it *and have a free slot*, in the
order they last changed load. Selection walks the rarest required capability's free set in
that order, which yields idle agents, idle longest first, without sorting.

An agent's load is not stored with the agent: it is the tasks whose stored record says the
agent holds them (offered to it or assigned), which the cache tells the registry as it takes
task records in (``hold``, ``let_go``). So running a task never rewrites the agent's record
(one hot key for all its work), and no crash between two writes can leave a slot taken.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hivebus_hookspecs.models import AgentRole, AgentState, AgentView

from .records import copier

__all__ = ["AgentRecord", "AgentRegistry"]


@dataclass(slots=True, eq=False)
class AgentRecord:
    """Treated as immutable once cached: a change stores an ``evolve``d copy."""

    agent_id: str
    role: AgentRole
    capabilities: tuple[str, ...]
    max_tasks: int
    metadata: dict[str, Any]
    registered_at: float
    state: AgentState = AgentState.ACTIVE
    instance_id: str | None = None
    offline_at: float | None = None
    quarantined_by: str | None = None
    """Out of rotation (a plugin's ``quarantine``): offered nothing until released."""
    quarantine_reason: str | None = None
    revision: int = 0
    capability_set: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.capability_set = frozenset(self.capabilities)

    @property
    def in_rotation(self) -> bool:
        """Live and not taken out of rotation: it may be offered work when it has room."""
        return self.state is AgentState.ACTIVE and self.quarantined_by is None

    def evolve(self, **changes: Any) -> AgentRecord:
        agent = _copy(self, changes)
        if "capabilities" in changes:
            agent.capability_set = frozenset(agent.capabilities)
        return agent

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "role": self.role.value,
            "capabilities": list(self.capabilities),
            "max_tasks": self.max_tasks,
            "metadata": self.metadata,
            "registered_at": self.registered_at,
            "state": self.state.value,
            "instance_id": self.instance_id,
            "offline_at": self.offline_at,
            "quarantined_by": self.quarantined_by,
            "quarantine_reason": self.quarantine_reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], revision: int) -> AgentRecord:
        return cls(
            agent_id=data["agent_id"],
            role=AgentRole(data["role"]),
            capabilities=tuple(data["capabilities"]),
            max_tasks=int(data["max_tasks"]),
            metadata=dict(data.get("metadata") or {}),
            registered_at=float(data["registered_at"]),
            state=AgentState(data["state"]),
            instance_id=data.get("instance_id"),
            offline_at=data.get("offline_at"),
            quarantined_by=data.get("quarantined_by"),
            quarantine_reason=data.get("quarantine_reason"),
            revision=revision,
        )

    def view(
        self,
        last_seen: float | None = None,
        context_window_usage: float | None = None,
        active_tasks: int = 0,
    ) -> AgentView:
        return AgentView(
            agent_id=self.agent_id,
            role=self.role,
            capabilities=list(self.capabilities),
            max_tasks=self.max_tasks,
            active_tasks=active_tasks,
            state=self.state,
            metadata=self.metadata,
            context_window_usage=context_window_usage,
            registered_at=self.registered_at,
            last_seen=last_seen if last_seen is not None else self.registered_at,
            quarantined_by=self.quarantined_by,
            quarantine_reason=self.quarantine_reason,
        )


_copy = copier(AgentRecord)


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
        # kept as agents come and go: counting on every registration is O(agents)
        self._active = 0
        # agent id -> the tasks stored as offered to it or assigned to it (its load)
        self._held: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._agents)

    def __iter__(self) -> Iterator[AgentRecord]:
        return iter(self._agents.values())

    def get(self, agent_id: str) -> AgentRecord | None:
        return self._agents.get(agent_id)

    def count_active(self) -> int:
        return self._active

    def load(self, agent_id: str) -> int:
        """Tasks offered to or held by the agent, as their stored records say."""
        held = self._held.get(agent_id)
        return len(held) if held is not None else 0

    def tasks_of(self, agent_id: str) -> frozenset[str]:
        return frozenset(self._held.get(agent_id, ()))

    def has_free_slot(self, agent: AgentRecord) -> bool:
        return agent.in_rotation and self.load(agent.agent_id) < agent.max_tasks

    def hold(self, agent_id: str, task_id: str) -> None:
        """A task record now says ``agent_id`` holds ``task_id``."""
        held = self._held.setdefault(agent_id, set())
        if task_id not in held:
            held.add(task_id)
            self._load_changed(agent_id)

    def let_go(self, agent_id: str, task_id: str) -> None:
        """A task record no longer says ``agent_id`` holds ``task_id``."""
        held = self._held.get(agent_id)
        if held is None or task_id not in held:
            return
        held.discard(task_id)
        if not held:
            del self._held[agent_id]
        self._load_changed(agent_id)

    def _load_changed(self, agent_id: str) -> None:
        """Keep the free index true: an agent whose load changed moves to the back of it."""
        agent = self._agents.get(agent_id)
        if agent is None or agent.state is not AgentState.ACTIVE:
            return
        self._unindex_free(agent)
        self._index_free(agent)

    def add(self, agent: AgentRecord) -> None:
        """Insert or replace; a replaced agent moves to the back of the free order."""
        self.remove(agent.agent_id)
        self._agents[agent.agent_id] = agent
        if agent.state is not AgentState.ACTIVE:
            return
        self._active += 1
        for cap in agent.capability_set:
            self._holders.setdefault(cap, {})[agent.agent_id] = None
        self._index_free(agent)

    def _index_free(self, agent: AgentRecord) -> None:
        if self.has_free_slot(agent):
            for cap in agent.capability_set:
                self._free.setdefault(cap, {})[agent.agent_id] = None
            self._free_any[agent.agent_id] = None

    def remove(self, agent_id: str) -> AgentRecord | None:
        agent = self._agents.pop(agent_id, None)
        if agent is not None:
            self._unindex(agent)
            if agent.state is AgentState.ACTIVE:
                self._active -= 1
        return agent

    def _unindex(self, agent: AgentRecord) -> None:
        self._unindex_free(agent)
        for cap in agent.capability_set:
            holders = self._holders.get(cap)
            if holders is not None:
                holders.pop(agent.agent_id, None)
                if not holders:
                    del self._holders[cap]

    def _unindex_free(self, agent: AgentRecord) -> None:
        self._free_any.pop(agent.agent_id, None)
        for cap in agent.capability_set:
            free = self._free.get(cap)
            if free is not None:
                free.pop(agent.agent_id, None)

    def candidates(
        self,
        required: frozenset[str],
        limit: int,
        exclude: frozenset[str] = frozenset(),
        claimed: Mapping[str, int] | None = None,
    ) -> list[AgentRecord]:
        """Up to ``limit`` live agents with every capability in ``required`` and a free slot.

        Ordered least loaded first (by fraction of slots used), then idle longest.
        ``claimed``: slots being reserved right now (the write not yet stored), counted as
        taken, so concurrent delegations spread over the agents instead of racing for one.
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
        busy: list[tuple[float, AgentRecord]] = []
        for agent_id in pool:
            if agent_id in exclude:
                continue
            agent = self._agents[agent_id]
            if not required <= agent.capability_set:
                continue
            load = self.load(agent_id)
            if claimed and agent_id in claimed:
                load += claimed[agent_id]
                if load >= agent.max_tasks:
                    continue
            if load == 0:
                idle.append(agent)
                if len(idle) >= limit:
                    return idle
            else:
                busy.append((load / agent.max_tasks, agent))
        # Python's sort is stable, so equal loads keep the idle-longest order of the index.
        busy.sort(key=lambda pair: pair[0])
        return (idle + [agent for _, agent in busy])[:limit]

    def free_agents(self) -> list[AgentRecord]:
        """Live agents with a free slot, idle longest first."""
        return [self._agents[agent_id] for agent_id in self._free_any]

    @property
    def capability_total(self) -> int:
        """How many distinct capabilities live agents hold."""
        return len(self._holders)

    def capability_counts(self, limit: int | None = None) -> dict[str, int]:
        """Live agents per capability, by name; with ``limit``, only the most held ones."""
        counts = {cap: len(holders) for cap, holders in self._holders.items()}
        if limit is not None and len(counts) > limit:
            kept = sorted(counts, key=lambda cap: (-counts[cap], cap))[:limit]
            counts = {cap: counts[cap] for cap in kept}
        return dict(sorted(counts.items()))
