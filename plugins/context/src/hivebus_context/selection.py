"""Choosing among candidates by context window usage: a pure function, easy to test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hivebus_hookspecs import AgentView

__all__ = ["Choice", "choose", "usage"]


def usage(agent: AgentView) -> float:
    """The agent's last reported usage; an agent that never reported counts as empty."""
    return agent.context_window_usage or 0.0


@dataclass(frozen=True, slots=True)
class Choice:
    agent: AgentView
    saturated: bool
    """True when every candidate was above the limit."""


def choose(candidates: Sequence[AgentView], max_usage: float) -> Choice | None:
    """The candidate with the lowest usage, skipping those above ``max_usage``.

    If every candidate is above it, the lowest of them all (and the choice is marked saturated).
    Ties keep the default order (least loaded, then idle longest), since ``min`` is stable.
    """
    if not candidates:
        return None
    eligible = [a for a in candidates if usage(a) <= max_usage]
    return Choice(min(eligible or candidates, key=usage), saturated=not eligible)
