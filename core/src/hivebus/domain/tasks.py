"""The task record and its lifecycle rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hivebus_hookspecs.models import TaskPriority, TaskStatus, TaskView

__all__ = ["TaskRecord"]


@dataclass(slots=True, eq=False)
class TaskRecord:
    task_id: str
    task_type: str
    required: frozenset[str]
    priority: TaskPriority
    payload: Any
    metadata: dict[str, Any]
    created_at: float
    seq: int
    """Arrival order: ties in priority are served oldest first."""
    status: TaskStatus = TaskStatus.QUEUED
    agent_id: str | None = None
    attempts: int = 0
    success: bool | None = None
    result: Any = None
    error: str | None = None
    assigned_at: float | None = None
    finished_at: float | None = None
    required_list: list[str] = field(default_factory=list)

    @property
    def queue_key(self) -> tuple[int, int]:
        return (-int(self.priority), self.seq)

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
