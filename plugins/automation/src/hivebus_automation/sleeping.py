"""Sleep and wake: who sleeps, for how long, and who is woken for work.

An agent's sleep record in the plugin's bucket (``sleep.<agent>``) says whether the plugin put
it to sleep, until when, and how many sleeps in a row it has had (a sleep with no task since
the last wake is "in a row", and lasts longer, up to a cap). The agent's own record in the
core (``AgentView.sleeping``) is what selection honours; the plugin's record decides which
replica acts: the one whose compare-and-set turned it asleep (or awake).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from hivebus_hookspecs import AgentReading, AgentState, AgentView, TaskView
from pydantic import JsonValue

from .settings import SleepSettings

__all__ = ["IdleClock", "asleep", "awake", "length", "needing_wake"]

Record = dict[str, JsonValue]
Seen = AgentView | AgentReading
"""An agent as an evaluation sees it: the evaluation reads ``context.roster()`` (a view per
agent would cost the loop ~50 ms at 10,000 agents); both have the fields used here."""


def _number(value: JsonValue) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def length(settings: SleepSettings, sleeps: int) -> float:
    """How long the ``sleeps``-th sleep in a row (1-based) lasts."""
    grown = settings.sleep_s * settings.sleep_factor ** min(max(sleeps - 1, 0), 64)
    return float(min(grown, settings.max_sleep_s))


def asleep(
    current: JsonValue,
    agent_id: str,
    now: float,
    settings: SleepSettings,
    reason: str,
    last_busy: float | None,
) -> tuple[Record, bool]:
    """The record with the agent asleep; True when this write put it to sleep."""
    record: Record = dict(current) if isinstance(current, dict) else {"agent_id": agent_id}
    if record.get("asleep") is True:
        return record, False
    sleeps = record.get("sleeps")
    sleeps = sleeps if isinstance(sleeps, int) else 0
    woke_at = _number(record.get("woke_at"))
    if woke_at is None or (last_busy is not None and last_busy > woke_at):
        sleeps = 0  # it worked since it last woke: this sleep starts a new run
    sleeps += 1
    return {
        **record,
        "asleep": True,
        "sleeps": sleeps,
        "since": now,
        "wake_at": now + length(settings, sleeps),
        "reason": reason,
    }, True


def awake(current: JsonValue, now: float, reason: str) -> tuple[Record | None, bool]:
    """The record with the agent awake; True when this write woke it."""
    if not isinstance(current, dict) or current.get("asleep") is not True:
        return (dict(current) if isinstance(current, dict) else None), False
    return {**current, "asleep": False, "woke_at": now, "wake_reason": reason}, True


def due(record: JsonValue, now: float) -> bool:
    """Its sleep time is over."""
    if not isinstance(record, dict) or record.get("asleep") is not True:
        return False
    wake_at = _number(record.get("wake_at"))
    return wake_at is not None and now >= wake_at


@dataclass
class IdleClock:
    """When this replica last saw each agent busy: a task assigned, finished, or held."""

    last_busy: dict[str, float] = field(default_factory=dict)

    def busy(self, agent_id: str, now: float) -> None:
        self.last_busy[agent_id] = now

    def forget(self, agent_id: str) -> None:
        self.last_busy.pop(agent_id, None)

    def sample(self, agents: Iterable[Seen], now: float) -> None:
        """Agents holding work are busy now; an agent seen for the first time starts idle
        from now (it is not put to sleep the moment this replica starts)."""
        seen = set()
        for agent in agents:
            seen.add(agent.agent_id)
            if agent.active_tasks or agent.agent_id not in self.last_busy:
                self.last_busy[agent.agent_id] = now
        for gone in [a for a in self.last_busy if a not in seen]:
            del self.last_busy[gone]

    def idle_for(self, agent_id: str, now: float) -> float:
        return now - self.last_busy.get(agent_id, now)


def in_rotation(agent: Seen) -> bool:
    return agent.state is AgentState.ACTIVE and agent.quarantined_by is None


def needing_wake(queued: list[TaskView], agents: Sequence[Seen]) -> list[tuple[str, str]]:
    """``(agent_id, task_id)``: a sleeping agent to wake for each queued task that needs its
    capabilities when no awake agent in rotation has a free slot left for it. Queued tasks
    take the free slots in queue order; a woken agent's slots serve the tasks after it."""
    slots = {
        a.agent_id: a.max_tasks - a.active_tasks
        for a in agents
        if in_rotation(a) and not a.sleeping and a.active_tasks < a.max_tasks
    }
    able = {a.agent_id: a for a in agents}
    sleepers = [a for a in agents if in_rotation(a) and a.sleeping]
    chosen: list[tuple[str, str]] = []
    for task in queued:
        needed = set(task.required_capabilities)
        taker = next((i for i in slots if _can_take(able[i], task, needed)), None)
        if taker is None:
            sleeper = next((a for a in sleepers if _can_take(a, task, needed)), None)
            if sleeper is None:
                continue
            sleepers.remove(sleeper)
            chosen.append((sleeper.agent_id, task.task_id))
            taker = sleeper.agent_id
            slots[taker] = sleeper.max_tasks - sleeper.active_tasks
        slots[taker] -= 1
        if slots[taker] <= 0:
            del slots[taker]
    return chosen


def _can_take(agent: Seen, task: TaskView, needed: set[str]) -> bool:
    """The capabilities, and the agent itself when the task requires one."""
    if task.require_agent is not None and task.require_agent != agent.agent_id:
        return False
    return needed <= set(agent.capabilities)
