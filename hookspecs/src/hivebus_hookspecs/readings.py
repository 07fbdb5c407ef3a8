"""Readings of the agent registry: plain figures a periodic evaluation reads instead of views.

An ``AgentView`` is a validated pydantic model, about 5 us to build: reading every agent's
view holds the core's event loop ~50 ms at 10,000 agents, and every delegation in flight waits
that long. A reading is summed (``CapacityGroup``, ``AgentCounts``) or a tuple per agent
(``AgentReading``), built from the core's registry with no model, no copy and no validation.
Like views, readings are this replica's registry: each replica sees the same agents once its
cache has caught up with the shared state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from .models import AgentRole, AgentState, AgentView

__all__ = ["AgentCounts", "AgentReading", "CapacityGroup", "capacity_of"]


class CapacityGroup(NamedTuple):
    """The live agents that hold one exact capability set, summed (``context.capacity()``).

    ``agents`` and the slot figures count the live agents not quarantined, sleeping ones
    included (they can be woken); quarantined ones (on trial too) are only in ``quarantined``.
    """

    capabilities: tuple[str, ...]
    """The set, sorted: every agent counted here holds exactly these capabilities."""
    agents: int
    slots: int
    """Their ``max_tasks``, summed."""
    busy_slots: int
    """Tasks offered to or held by them, at most ``max_tasks`` each."""
    busy: int
    """Of ``agents``, those holding at least one task."""
    full: int
    """Of ``agents``, those holding ``max_tasks`` tasks or more: no room left."""
    sleeping: int
    """Of ``agents``, those asleep."""
    quarantined: int
    """Live agents with this set out of rotation (on trial included), not in ``agents``."""


class AgentCounts(NamedTuple):
    """One role's agents (``context.agent_counts()``). ``live`` counts every live agent; it
    may also be busy, quarantined and sleeping at once, so those overlap."""

    live: int
    busy: int
    """Live and holding at least one task."""
    quarantined: int
    sleeping: int
    offline: int


class AgentReading(NamedTuple):
    """One agent as ``context.roster()`` reads it: the fields of its ``AgentView`` that a
    periodic evaluation uses, named the same, at a fraction of a view's cost."""

    agent_id: str
    role: AgentRole
    capabilities: tuple[str, ...]
    max_tasks: int
    active_tasks: int
    state: AgentState
    quarantined_by: str | None
    on_trial: bool
    sleeping: bool
    context_window_usage: float | None


def capacity_of(agents: Iterable[AgentView | AgentReading]) -> list[CapacityGroup]:
    """``context.capacity()`` computed from views (or readings) already in hand, same order."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for agent in agents:
        if agent.state is not AgentState.ACTIVE:
            continue
        caps = tuple(sorted(set(agent.capabilities)))
        group = groups.setdefault(caps, [0] * 7)
        if agent.quarantined_by is not None:
            group[6] += 1
            continue
        held, most = agent.active_tasks, agent.max_tasks
        group[0] += 1
        group[1] += most
        group[2] += min(held, most)
        group[3] += held > 0
        group[4] += held >= most
        group[5] += agent.sleeping
    return [CapacityGroup(caps, *figures) for caps, figures in sorted(groups.items())]
