"""The registry read for periodic evaluations, with no view per agent.

One pass over this replica's agent records, their load taken from the registry (the tasks
their stored records say they hold) and their context usage from the cache: the same figures
the views show, summed or as light tuples (``hivebus_hookspecs.readings``), about a tenth of
the cost of building the views.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from hivebus_hookspecs.models import AgentRole, AgentState
from hivebus_hookspecs.readings import AgentCounts, AgentReading, CapacityGroup

if TYPE_CHECKING:
    from ..domain.registry import AgentRecord, AgentRegistry

__all__ = ["agent_counts", "capacity", "context_usage", "roster"]

_ACTIVE = AgentState.ACTIVE


def capacity(registry: AgentRegistry) -> list[CapacityGroup]:
    """Live agents summed by exact capability set, sorted by set."""
    load = registry.load
    groups: dict[frozenset[str], list[int]] = {}
    for agent in registry:
        if agent.state is not _ACTIVE:
            continue
        group = groups.get(agent.capability_set)
        if group is None:
            group = groups[agent.capability_set] = [0] * 7
        if agent.quarantined_by is not None:
            group[6] += 1
            continue
        held, most = load(agent.agent_id), agent.max_tasks
        group[0] += 1
        group[1] += most
        group[2] += min(held, most)
        group[3] += held > 0
        group[4] += held >= most
        group[5] += agent.sleeping
    return sorted(CapacityGroup(tuple(sorted(caps)), *figures) for caps, figures in groups.items())


def agent_counts(registry: AgentRegistry) -> dict[AgentRole, AgentCounts]:
    """Every role's agents: live, busy, quarantined, sleeping, offline (overlapping)."""
    load = registry.load
    counts = {role: [0] * 5 for role in AgentRole}
    for agent in registry:
        row = counts[agent.role]
        if agent.state is not _ACTIVE:
            row[4] += 1
            continue
        row[0] += 1
        row[1] += load(agent.agent_id) > 0
        row[2] += agent.quarantined_by is not None
        row[3] += agent.sleeping
    return {role: AgentCounts(*row) for role, row in counts.items()}


def context_usage(registry: AgentRegistry, usage: Mapping[str, float]) -> dict[str, float]:
    """The usage each live agent last reported, for those that did."""
    out = {}
    for agent_id, used in usage.items():
        agent = registry.get(agent_id)
        if agent is not None and agent.state is _ACTIVE:
            out[agent_id] = used
    return out


def roster(registry: AgentRegistry, usage: Mapping[str, float]) -> list[AgentReading]:
    """Every agent as an ``AgentReading``, in order of their ids."""
    load, used = registry.load, usage.get
    return [
        AgentReading(
            agent.agent_id,
            agent.role,
            agent.capabilities,
            agent.max_tasks,
            load(agent.agent_id),
            agent.state,
            agent.quarantined_by,
            agent.on_trial,
            agent.sleeping,
            used(agent.agent_id),
        )
        for agent in sorted(registry, key=_by_id)
    ]


def _by_id(agent: AgentRecord) -> str:
    return agent.agent_id
