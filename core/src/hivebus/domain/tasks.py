"""The task record: what the core knows about one task, as cached and as stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from hivebus_hookspecs.models import RetryPolicy, TaskPriority, TaskStatus, TaskView

from .records import copier, stored_fields

__all__ = ["VALUE_WEIGHT", "TaskRecord", "json_values"]

VALUE_WEIGHT = 64
"""Bytes a record's weight adds per JSON value (and object key) in its payload, metadata and
result: parsed, ``[{},{},...]`` takes 24 times its JSON bytes, a long string about once. The
weight, not the JSON length, is what the memory budgets count."""


def json_values(value: Any) -> int:
    """How many values (object keys included) a parsed JSON value holds, itself included."""
    count = 0
    stack = [value]
    while stack:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            count += len(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


@dataclass(slots=True, eq=False)
class TaskRecord:
    """Treated as immutable once cached: a transition stores an ``evolve``d copy."""

    task_id: str
    task_type: str
    required_list: list[str]
    priority: TaskPriority
    payload: Any
    metadata: dict[str, Any]
    created_at: float
    seq: int
    """Arrival order (nanoseconds since the epoch): equal priorities are served oldest first."""
    status: TaskStatus = TaskStatus.QUEUED
    agent_id: str | None = None
    attempts: int = 0
    success: bool | None = None
    result: Any = None
    error: str | None = None
    offered_at: float | None = None
    assigned_at: float | None = None
    finished_at: float | None = None
    queue_deadline: float | None = None
    execution_timeout_s: float | None = None
    not_before: float | None = None
    """``scheduled``: queued at this Unix time; ``retrying``: the next attempt's time."""
    # What the delegator asked for beyond "run it" (stored only when set: see ``to_dict``).
    queue_timeout_s: float | None = None
    retry: dict[str, Any] | None = None
    """The retry policy in force, as a ``RetryPolicy``'s fields; ``None``: the legacy rule
    (a reported failure is final, a task taken back is queued again up to max_attempts)."""
    attempts_base: int = 0
    """``attempts`` when the task was last retried by hand: the policy counts from here."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One ``Attempt`` per acceptance that ended; never mutated (a transition makes a new list)."""
    depends_on: list[str] = field(default_factory=list)
    concurrency: dict[str, Any] | None = None
    tenant: str | None = None
    prefer_agents: list[str] = field(default_factory=list)
    require_agent: str | None = None
    gate: str | None = None
    """The stamp of the concurrency place this task holds while offered or assigned."""
    revision: int = 0
    """The store's revision this record was read at or written as; 0 before it is stored."""
    _size: int = field(default=-1, init=False, repr=False)
    _weight: int = field(default=-1, init=False, repr=False)

    @property
    def size(self) -> int:
        """The record's stored size in bytes (its JSON), computed once per content."""
        if self._size < 0:
            self._size = len(orjson.dumps(self.to_dict()))
        return self._size

    @property
    def weight(self) -> int:
        """What holding the record in memory costs, as the budgets count it: its JSON size
        plus ``VALUE_WEIGHT`` for every value of its payload, metadata and result."""
        if self._weight < 0:
            values = json_values(self.payload) + json_values(self.metadata)
            values += json_values(self.result)
            self._weight = self.size + VALUE_WEIGHT * values
        return self._weight

    @property
    def required(self) -> frozenset[str]:
        return frozenset(self.required_list)

    @property
    def queue_key(self) -> tuple[int, int]:
        return (-int(self.priority), self.seq)

    def evolve(self, **changes: Any) -> TaskRecord:
        task = _copy(self, changes)
        if not _SIZE_KEEPING.issuperset(changes):
            task._size = task._weight = -1
        return task

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _STORED}
        for name in _OPTIONAL:
            if not data[name]:
                del data[name]  # most tasks use none of these: keep their records lean
        data["priority"] = int(self.priority)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], revision: int) -> TaskRecord:
        values = {k: v for k, v in data.items() if k in _KNOWN}
        values["priority"] = TaskPriority(values["priority"])
        values["status"] = TaskStatus(values["status"])
        values["revision"] = revision
        return cls(**values)

    def view(self) -> TaskView:
        return TaskView(
            task_id=self.task_id,
            task_type=self.task_type,
            status=self.status,
            agent_id=self.agent_id,
            required_capabilities=self.required_list,
            priority=self.priority,
            payload=self.payload,
            metadata=self.metadata,
            attempts=self.attempts,
            success=self.success,
            result=self.result,
            error=self.error,
            created_at=self.created_at,
            assigned_at=self.assigned_at,
            finished_at=self.finished_at,
            not_before=self.not_before if self.status is TaskStatus.SCHEDULED else None,
            next_attempt_at=self.not_before if self.status is TaskStatus.RETRYING else None,
            retry=self.retry,
            history=self.history,
            depends_on=self.depends_on,
            concurrency=self.concurrency,
            tenant=self.tenant,
            prefer_agents=self.prefer_agents,
            require_agent=self.require_agent,
        )

    @property
    def policy(self) -> RetryPolicy | None:
        return RetryPolicy.model_validate(self.retry) if self.retry is not None else None

    @property
    def concurrency_key(self) -> str | None:
        return self.concurrency["key"] if self.concurrency else None


_copy = copier(TaskRecord)
_SIZE_KEEPING = frozenset(
    {"status", "agent_id", "attempts", "offered_at", "assigned_at", "revision"}
)
"""Changes that leave the record's size as it was, give or take a few bytes of numbers."""
_KNOWN = frozenset(stored_fields(TaskRecord))
_OPTIONAL = (
    "queue_timeout_s",
    "retry",
    "attempts_base",
    "history",
    "depends_on",
    "concurrency",
    "tenant",
    "prefer_agents",
    "require_agent",
    "gate",
)
"""Fields stored only when set: absent, they read back as their defaults."""
_STORED = tuple(name for name in stored_fields(TaskRecord) if name != "revision")
"""What is stored: every field but the revision (the store's own sequence)."""
