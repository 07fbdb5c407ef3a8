"""The task record: what the core knows about one task, as cached and as stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hivebus_hookspecs.models import TaskPriority, TaskStatus, TaskView

from .records import copier, stored_fields

__all__ = ["TaskRecord"]


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
    revision: int = 0
    """The store's revision this record was read at or written as; 0 before it is stored."""

    @property
    def required(self) -> frozenset[str]:
        return frozenset(self.required_list)

    @property
    def queue_key(self) -> tuple[int, int]:
        return (-int(self.priority), self.seq)

    def evolve(self, **changes: Any) -> TaskRecord:
        return _copy(self, changes)

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _STORED}
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
        )


_copy = copier(TaskRecord)
_KNOWN = frozenset(stored_fields(TaskRecord))
_STORED = tuple(name for name in stored_fields(TaskRecord) if name != "revision")
"""What is stored: every field but the revision (the store's own sequence)."""
