"""Choosing among candidates by context window usage: a pure function, easy to test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from hivebus_hookspecs import AgentView

__all__ = ["Choice", "choose", "usage"]


def usage(agent: AgentView) -> float:
    """The agent's last reported usage; an agent that never reported counts as empty."""
    return agent.context_window_usage or 0.0


class Choice(NamedTuple):
    """A named tuple, built on every placement: cheaper than a frozen dataclass."""

    agent: AgentView
    saturated: bool
    """True when every candidate was above the limit."""


def choose(candidates: Sequence[AgentView], max_usage: float) -> Choice | None:
    """The candidate with the lowest usage, skipping those above ``max_usage``.

    If every candidate is above it, the lowest of them all (and the choice is marked saturated).
    Ties keep the default order (least loaded, then idle longest): the first lowest wins.
    """
    # One pass, no lists, ``usage`` inlined: it runs on every placement, over every candidate.
    eligible: AgentView | None = None
    lowest: AgentView | None = None
    eligible_usage = lowest_usage = 0.0
    for agent in candidates:
        used = agent.context_window_usage or 0.0
        if lowest is None or used < lowest_usage:
            lowest, lowest_usage = agent, used
        if used <= max_usage and (eligible is None or used < eligible_usage):
            eligible, eligible_usage = agent, used
    if eligible is not None:
        return Choice(eligible, saturated=False)
    if lowest is not None:
        return Choice(lowest, saturated=True)
    return None
