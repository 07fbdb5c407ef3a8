"""An agent's circuit breaker as a pure state machine over its record in the plugin's bucket.

``closed``: the agent works; failures, refusals and offer timeouts in a row are counted, and a
count at its threshold opens the breaker. ``open``: the agent is quarantined until
``retry_at``. ``half_open``: it is offered one task at a time (a quarantine on trial); a
success closes the breaker, a failure (or refusal, or timeout) opens it again for a longer
cooldown. Every function here takes the stored record and returns the record to store and
the change it makes, so ``kv.update`` can call it again on a newer record when another
replica wrote first: the replica whose write made the change is the one that announces it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import JsonValue

from .settings import BreakerSettings

__all__ = [
    "Change",
    "Outcome",
    "Record",
    "State",
    "cooldown",
    "due",
    "fresh",
    "observe",
    "quarantine_reason",
    "state_of",
    "with_trial",
]

Record = dict[str, JsonValue]


class State(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


Outcome = Literal["success", "failure", "refusal", "timeout", "assigned"]
"""What an agent did: finished a task well or badly, refused or ignored an offer, took one."""

_COUNTER: dict[str, str] = {"failure": "failures", "refusal": "refusals", "timeout": "timeouts"}
_WHAT = {
    "failures": "failed attempts in a row",
    "refusals": "offers refused in a row",
    "timeouts": "offers unanswered in a row",
}


@dataclass(frozen=True)
class Change:
    agent_id: str
    from_state: State
    to_state: State
    reason: str


def fresh(agent_id: str) -> Record:
    return {
        "agent_id": agent_id,
        "state": State.CLOSED.value,
        "failures": 0,
        "refusals": 0,
        "timeouts": 0,
        "opens": 0,
        "retry_at": None,
        "trial_task": None,
        "reason": None,
        "since": None,
    }


def _record(current: JsonValue, agent_id: str) -> Record:
    return {**fresh(agent_id), **current} if isinstance(current, dict) else fresh(agent_id)


def _int(record: Record, key: str) -> int:
    value = record.get(key)
    return value if isinstance(value, int) else 0


def state_of(record: Any) -> State:
    state = record.get("state") if isinstance(record, dict) else None
    return State(state) if isinstance(state, str) and state in set(State) else State.CLOSED


def cooldown(settings: BreakerSettings, opens: int) -> float:
    """The wait after the ``opens``-th opening in a row (1-based)."""
    grown = settings.cooldown_s * settings.cooldown_factor ** min(max(opens - 1, 0), 64)
    return float(min(grown, settings.max_cooldown_s))


def _open(record: Record, now: float, settings: BreakerSettings, reason: str) -> Record:
    opens = _int(record, "opens") + 1
    return {
        **record,
        "state": State.OPEN.value,
        "opens": opens,
        "retry_at": now + cooldown(settings, opens),
        "trial_task": None,
        "reason": reason,
        "since": now,
    }


def observe(
    current: JsonValue,
    agent_id: str,
    outcome: Outcome,
    now: float,
    settings: BreakerSettings,
    detail: str | None = None,
) -> tuple[Record, Change | None]:
    """The record after the agent's ``outcome``, and the change of state it made, if any."""
    record = _record(current, agent_id)
    state = state_of(record)
    if state is State.OPEN:
        return record, None  # quarantined: what it still finishes was taken before
    if outcome == "assigned":
        return {**record, "refusals": 0, "timeouts": 0}, None
    if state is State.HALF_OPEN:
        if outcome == "success":
            closed = {**fresh(agent_id), "since": now, "reason": "trial task succeeded"}
            return closed, Change(agent_id, state, State.CLOSED, "trial task succeeded")
        why = f"trial {outcome}" + (f": {detail}" if detail else "")
        return _open(record, now, settings, why), Change(agent_id, state, State.OPEN, why)
    if outcome == "success":
        return {**record, "failures": 0, "refusals": 0, "timeouts": 0}, None
    counter = _COUNTER[outcome]
    count = _int(record, counter) + 1
    record = {**record, counter: count}
    if count < getattr(settings, counter):
        return record, None
    why = f"{count} {_WHAT[counter]}" + (f" (last: {detail})" if detail else "")
    return _open(record, now, settings, why), Change(agent_id, state, State.OPEN, why)


def due(current: JsonValue, agent_id: str, now: float) -> tuple[Record, Change | None]:
    """An open breaker whose cooldown has passed turns half-open."""
    record = _record(current, agent_id)
    retry_at = record.get("retry_at")
    if state_of(record) is not State.OPEN or not isinstance(retry_at, int | float):
        return record, None
    if now < retry_at:
        return record, None
    why = "cooldown passed: one trial task"
    half = {**record, "state": State.HALF_OPEN.value, "trial_task": None, "since": now}
    return {**half, "reason": why}, Change(agent_id, State.OPEN, State.HALF_OPEN, why)


def with_trial(current: JsonValue, agent_id: str, task_id: str) -> tuple[Record, bool]:
    """A half-open breaker's trial task: the first one assigned. True when this is it."""
    record = _record(current, agent_id)
    if state_of(record) is not State.HALF_OPEN or record.get("trial_task") is not None:
        return record, False
    return {**record, "trial_task": task_id}, True


def quarantine_reason(record: Record) -> str:
    """What ``hivebus agents`` shows for an agent out of rotation because of its breaker."""
    state = state_of(record)
    if state is State.OPEN:
        return f"circuit breaker open: {record.get('reason')}"
    trial = record.get("trial_task")
    if trial is not None:
        return f"circuit breaker half-open: trial task {trial} running"
    return "circuit breaker half-open: waiting for one trial task"
