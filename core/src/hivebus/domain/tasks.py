"""The task record: what the core knows about one task, as cached and as stored."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import orjson
from hivebus_hookspecs.models import RetryPolicy, TaskPriority, TaskStatus, TaskView

from .records import copier, stored_fields

__all__ = ["ACTIVE", "VALUE_WEIGHT", "TaskRecord", "json_values"]

ACTIVE = (TaskStatus.OFFERED, TaskStatus.ASSIGNED)
"""A task in one of these is held by its agent (and occupies one of its slots)."""

VALUE_WEIGHT = 64
"""Bytes a record's weight adds per JSON value (and object key) in its payload, metadata and
result: parsed, ``[{},{},...]`` takes 24 times its JSON bytes, a long string about once. The
weight, not the JSON length, is what the memory budgets count."""


def json_values(value: Any) -> int:
    """How many values (object keys included) a parsed JSON value holds, itself included.

    Level by level, and by exact type: payloads, metadata and results are built by parsing or
    validating JSON, which makes only ``dict`` and ``list`` (twice as fast as node by node)."""
    count = 0
    level = [value]
    while level:
        count += len(level)
        deeper: list[Any] = []
        for node in level:
            kind = type(node)
            if kind is dict:
                count += len(node)
                deeper += node.values()
            elif kind is list:
                deeper += node
        level = deeper
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
    progress: float | None = None
    """The latest fraction done its agent reported (``task.progress``); ``data`` is never
    stored, records stay small."""
    progress_message: str | None = None
    progress_at: float | None = None
    """When the agent last reported progress: the execution timeout counts from the later of
    this and ``assigned_at``, so it holds across replicas and restarts."""
    _size: int = field(default=-1, init=False, repr=False)
    _weight: int = field(default=-1, init=False, repr=False)
    _json: bytes | None = field(default=None, init=False, repr=False)
    _payload_values: int = field(default=-1, init=False, repr=False)
    """``json_values`` of the payload once counted: kept by the transitions that leave the
    payload as it is (a 32 KiB payload took 0.2 ms to walk, once for each of six records a
    task went through). Metadata and results are counted with each new record's weight."""

    def encoded(self) -> bytes:
        """The record as stored (its JSON), encoded once: a record measured before it is
        written (a completion's, checked against the message size) is encoded only once."""
        if self._json is None:
            self._json = orjson.dumps(self.to_dict())
        return self._json

    def drop_encoding(self) -> None:
        """Stored: keep its size, not its bytes (a cached record would otherwise hold its
        payload twice, once parsed and once as JSON)."""
        self._json = None

    @property
    def size(self) -> int:
        """The record's stored size in bytes (its JSON), computed once per content."""
        if self._size < 0:
            self._size = len(self.encoded())
        return self._size

    @property
    def weight(self) -> int:
        """What holding the record in memory costs, as the budgets count it: its JSON size
        plus ``VALUE_WEIGHT`` for every value of its payload, metadata and result."""
        if self._weight < 0:
            if self._payload_values < 0:
                self._payload_values = json_values(self.payload)
            values = self._payload_values + json_values(self.metadata) + json_values(self.result)
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
        if "payload" in changes:
            task._payload_values = -1
        if changes.keys() != _REVISION_ONLY:  # the revision is the store's, not in the JSON
            task._json = None
        return task

    def to_dict(self) -> dict[str, Any]:
        data = dict(zip(_ALWAYS, _always(self), strict=True))
        optional = _optional(self)
        if any(optional):  # most tasks use none of these: their records stay lean
            data.update((n, v) for n, v in zip(_OPTIONAL, optional, strict=True) if v)
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
        status = self.status
        optional = _optional(self)
        shown = (
            {n: v for n, v in zip(_OPTIONAL, optional, strict=True) if v and n in _VIEWED}
            if any(optional)
            else {}
        )
        if self.not_before is not None and status in _WAITS_FOR_TIME:
            shown[_WAITS_FOR_TIME[status]] = self.not_before
        return TaskView(
            task_id=self.task_id,
            task_type=self.task_type,
            status=status,
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
            progress=self.progress,
            progress_message=self.progress_message,
            progress_at=self.progress_at,
            **shown,
        )

    def overdue(self, now: float) -> bool:
        """Past its execution timeout, counted from the latest sign of work: the assignment
        or a progress report, whichever is later (a report from an earlier attempt is older
        than this assignment, so it buys the new attempt nothing)."""
        limit = self.execution_timeout_s
        since = max(self.assigned_at or 0.0, self.progress_at or 0.0)
        return limit is not None and since > 0.0 and now > since + limit

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
_REVISION_ONLY = frozenset({"revision"})
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
_ALWAYS = tuple(name for name in _STORED if name not in _OPTIONAL)
_always = operator.attrgetter(*_ALWAYS)
_WAITS_FOR_TIME = {TaskStatus.SCHEDULED: "not_before", TaskStatus.RETRYING: "next_attempt_at"}
_VIEWED = frozenset(_OPTIONAL) - {"queue_timeout_s", "attempts_base", "gate"}
"""The optional fields a task view shows (only when set: a view's defaults cost nothing)."""
_optional = operator.attrgetter(*_OPTIONAL)
