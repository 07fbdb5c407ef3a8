"""Scaling signals for an external autoscaler: which capability set needs more or fewer agents.

``pressures`` turns the bus's capacity reading into one ``Pressure`` per capability set
(waiting work, the oldest wait, the agents that could take it and how busy they are).
``Scaler`` decides, with two guards against flapping: **hysteresis** (scale up above
``up_utilisation``, down only below ``down_utilisation``, and either only after the condition
held ``sustain`` evaluations in a row) and a **cooldown** per set after each signal. Pure: the
caller passes ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from hivebus_hookspecs import CapacityGroup, TaskView
from pydantic import JsonValue

from .settings import ScalingSettings

__all__ = ["Pressure", "Scaler", "Signal", "pressures"]

CapabilitySet = tuple[str, ...]


@dataclass(frozen=True)
class Pressure:
    capabilities: CapabilitySet
    queued: int
    oldest_wait_s: float
    agents: int
    busy_slots: int
    slots: int

    @property
    def utilisation(self) -> float:
        return self.busy_slots / self.slots if self.slots else 0.0

    def evidence(self) -> dict[str, JsonValue]:
        return {
            "queued": self.queued,
            "oldest_wait_s": round(self.oldest_wait_s, 3),
            "agents_now": self.agents,
            "busy_slots": self.busy_slots,
            "slots": self.slots,
            "utilisation": round(self.utilisation, 3),
        }


@dataclass(frozen=True)
class Signal:
    direction: str  # "up" or "down"
    capabilities: CapabilitySet
    agents: int
    reason: str
    pressure: Pressure


def pressures(
    queued: Iterable[TaskView], capacity: Iterable[CapacityGroup], now: float, limit: int = 1000
) -> list[Pressure]:
    """One ``Pressure`` per capability set that has waiting tasks or agents of its own.

    A waiting task belongs to the set it requires; an agent serves every set its capabilities
    cover, and its own exact set is listed even with nothing waiting, so that idle agents can
    be given back. Agents counted are the live ones not quarantined (sleeping ones included).

    ``capacity`` has the agents already summed by exact set (``context.capacity()``: no view
    per agent); the groups that cover a set are found through an index by capability, from its
    rarest one: never every set against every agent (ten thousand agents with a set each would
    make that a hundred million comparisons on the core's event loop).
    """
    waiting: dict[CapabilitySet, list[float]] = {}
    for task in queued:
        waits = waiting.setdefault(tuple(sorted(set(task.required_capabilities))), [])
        waits.append(max(0.0, now - task.created_at))
    groups = {group.capabilities: group for group in capacity if group.agents}
    holders: dict[str, list[CapabilitySet]] = {}
    for caps in groups:
        for cap in caps:
            holders.setdefault(cap, []).append(caps)
    out = []
    for caps in sorted(set(waiting) | set(groups))[:limit]:
        able = _covering(caps, groups, holders)
        waits = waiting.get(caps, [])
        out.append(
            Pressure(
                capabilities=caps,
                queued=len(waits),
                oldest_wait_s=max(waits, default=0.0),
                agents=sum(g.agents for g in able),
                busy_slots=sum(g.busy_slots for g in able),
                slots=sum(g.slots for g in able),
            )
        )
    return out


def _covering(
    caps: CapabilitySet,
    groups: dict[CapabilitySet, CapacityGroup],
    holders: dict[str, list[CapabilitySet]],
) -> list[CapacityGroup]:
    """The groups whose set holds every capability in ``caps``."""
    if not caps:
        return list(groups.values())
    rarest = min(caps, key=lambda cap: len(holders.get(cap, ())))
    wanted = set(caps)
    return [groups[held] for held in holders.get(rarest, ()) if wanted.issubset(held)]


@dataclass
class Scaler:
    settings: ScalingSettings
    _streaks: dict[tuple[str, CapabilitySet], int] = field(default_factory=dict)
    _last_signal: dict[CapabilitySet, float] = field(default_factory=dict)

    def decide(self, pressures: Iterable[Pressure], now: float) -> list[Signal]:
        """The signals due now; the caller reports each one it sent with ``signalled``."""
        s = self.settings
        signals = []
        seen: set[tuple[str, CapabilitySet]] = set()
        for p in pressures:
            wanted = self._wanted(p)
            if wanted is None:
                continue
            direction, count, reason = wanted
            key = (direction, p.capabilities)
            seen.add(key)
            streak = self._streaks.get(key, 0) + 1
            self._streaks[key] = streak
            if streak < s.sustain or self.cooling(p.capabilities, now):
                continue
            signals.append(Signal(direction, p.capabilities, count, reason, p))
        # A condition that stopped holding starts its count again: that is the hysteresis.
        for key in list(self._streaks):
            if key not in seen:
                del self._streaks[key]
        return signals

    def cooling(self, capabilities: CapabilitySet, now: float) -> bool:
        last = self._last_signal.get(capabilities)
        return last is not None and now - last < self.settings.cooldown_s

    def signalled(self, capabilities: CapabilitySet, at: float) -> None:
        """A signal for this set went out (from here or another replica): cool down."""
        self._last_signal[capabilities] = at
        for direction in ("up", "down"):
            self._streaks.pop((direction, capabilities), None)

    def wants_more(self, p: Pressure) -> bool:
        """Work of this set is waiting beyond what its agents keep up with, right now."""
        wanted = self._wanted(p)
        return wanted is not None and wanted[0] == "up"

    def _wanted(self, p: Pressure) -> tuple[str, int, str] | None:
        s = self.settings
        per_agent = p.slots / p.agents if p.agents else 1.0
        if p.queued:
            reasons = []
            if p.queued >= s.up_queue_depth:
                reasons.append(f"{p.queued} tasks waiting (threshold {s.up_queue_depth})")
            if p.oldest_wait_s >= s.up_wait_s:
                reasons.append(f"oldest waited {p.oldest_wait_s:.1f}s (threshold {s.up_wait_s:g}s)")
            if p.agents == 0:
                reasons.append("no agent can take this work")
            elif p.utilisation >= s.up_utilisation:
                reasons.append(
                    f"utilisation {p.utilisation:.0%} (threshold {s.up_utilisation:.0%})"
                )
            if not reasons:
                return None
            count = min(s.max_step, max(1, math.ceil(p.queued / per_agent)))
            return "up", count, "; ".join(reasons)
        if p.agents > s.min_agents and p.utilisation < s.down_utilisation:
            # Keep enough agents that the busy slots would sit at the middle of the band.
            target = (s.up_utilisation + s.down_utilisation) / 2
            needed = max(s.min_agents, math.ceil(p.busy_slots / (per_agent * target)))
            count = min(s.max_step, p.agents - needed)
            if count < 1:
                return None
            reason = (
                f"nothing waiting, utilisation {p.utilisation:.0%} "
                f"(threshold {s.down_utilisation:.0%})"
            )
            return "down", count, reason
        return None
