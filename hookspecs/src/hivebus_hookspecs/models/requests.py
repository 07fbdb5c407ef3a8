"""Requests: the bodies a client sends the core. Unknown fields are rejected, so a typo is an
error, not a silently ignored option."""

from __future__ import annotations

from pydantic import Field, JsonValue, model_validator

from .bodies import RequestBody
from .enums import AgentRole, Priority, TaskPriority, TaskStatus
from .identifiers import AgentId, Capability, Metadata, TaskId
from .task_options import ConcurrencyLimit, RetryPolicy

__all__ = [
    "AgentsRequest",
    "CompleteRequest",
    "DelegateRequest",
    "DeregisterRequest",
    "EmptyRequest",
    "HeartbeatRequest",
    "RegisterRequest",
    "TaskRequest",
    "TasksRequest",
]


class EmptyRequest(RequestBody):
    """``orchestrator.status|plugins`` take an empty object."""


class AgentsRequest(RequestBody):
    """``orchestrator.agents``: agents by id, a page at a time."""

    limit: int = Field(default=100, ge=1, le=10_000)
    cursor: str | None = Field(default=None, max_length=256)
    """The ``next_cursor`` of the previous page; opaque."""


class RegisterRequest(RequestBody):
    agent_id: AgentId
    role: AgentRole = AgentRole.WORKER
    capabilities: list[Capability] = Field(default_factory=list, max_length=256)
    max_tasks: int = Field(default=1, ge=1, le=10_000)
    metadata: Metadata = Field(default_factory=dict)
    instance_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Identifies one run of the agent process: registering again with the same one (after a
    reconnect) is answered as a success; another process with the same agent id is refused
    with ``agent_exists`` until the first one is gone."""


class HeartbeatRequest(RequestBody):
    agent_id: AgentId
    active_tasks: int | None = Field(default=None, ge=0)
    context_window_usage: float | None = Field(default=None, ge=0.0, le=1.0)


class DeregisterRequest(RequestBody):
    agent_id: AgentId


class DelegateRequest(RequestBody):
    task_id: TaskId | None = None
    task_type: str = Field(default="task", min_length=1, max_length=128)
    required_capabilities: list[Capability] = Field(default_factory=list, max_length=256)
    priority: Priority = TaskPriority.MEDIUM
    payload: JsonValue = None
    metadata: Metadata = Field(default_factory=dict)
    queue: bool = True
    queue_timeout_s: float | None = Field(default=None, gt=0)
    """Fail the task as ``expired`` if nobody has accepted it this long after delegation."""
    execution_timeout_s: float | None = Field(default=None, gt=0)
    """Requeue (or fail, as configured) a task still running this long after assignment."""
    retry: RetryPolicy | None = None
    """Retry failed attempts with backoff; the task is ``dead`` when they run out."""
    delay_s: float | None = Field(default=None, ge=0, le=366 * 86_400)
    """Offer the task no sooner than this many seconds from now (``scheduled`` until then)."""
    not_before: float | None = Field(default=None, ge=0)
    """Offer the task no sooner than this Unix time (not with ``delay_s``)."""
    depends_on: list[TaskId] = Field(default_factory=list, max_length=64)
    """Existing tasks that must complete first; the task is ``blocked`` until they have."""
    concurrency: ConcurrencyLimit | None = None
    tenant: str | None = Field(default=None, min_length=1, max_length=128)
    """Within a priority, tenants' queued tasks are offered in turn."""
    prefer_agents: list[AgentId] = Field(default_factory=list, max_length=16)
    """Offered first, when free and capable."""
    require_agent: AgentId | None = None
    """Offered to this agent only: the task waits for it."""

    @model_validator(mode="after")
    def _one_start_time(self) -> DelegateRequest:
        if self.delay_s is not None and self.not_before is not None:
            raise ValueError("give delay_s or not_before, not both")
        return self


class CompleteRequest(RequestBody):
    task_id: TaskId
    agent_id: AgentId
    success: bool = True
    result: JsonValue = None
    error: str | None = Field(default=None, max_length=8192)
    retryable: bool = True
    """With ``success: false``: ``false`` makes the failure final, whatever the retry policy."""


class TaskRequest(RequestBody):
    """``task.get``, ``task.cancel`` and ``task.retry``."""

    task_id: TaskId


class TasksRequest(RequestBody):
    """``orchestrator.tasks``: live tasks first, newest first."""

    status: TaskStatus | None = None
    limit: int = Field(default=100, ge=1, le=10_000)
    cursor: str | None = Field(default=None, max_length=256)
    """The ``next_cursor`` of the previous page; opaque."""
