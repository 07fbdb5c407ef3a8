"""Replies, and the views of agents, tasks and plugins they carry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .bodies import CoreBody
from .enums import AgentRole, AgentState, ErrorCode, HealthStatus, Priority, TaskStatus
from .identifiers import CarriedJson, CarriedMetadata
from .task_options import Attempt, ConcurrencyLimit, RetryPolicy

__all__ = [
    "AgentView",
    "AgentsReply",
    "DelegateReply",
    "DeregisterReply",
    "ErrorBody",
    "ErrorReply",
    "OkReply",
    "PluginInfo",
    "PluginsReply",
    "RegisterReply",
    "TaskReply",
    "TaskView",
    "TasksReply",
]


class AgentView(CoreBody):
    agent_id: str
    role: AgentRole
    capabilities: list[str]
    max_tasks: int
    active_tasks: int
    state: AgentState
    metadata: CarriedMetadata = Field(default_factory=dict)
    context_window_usage: float | None = None
    registered_at: float
    last_seen: float
    quarantined_by: str | None = None
    """Set while the agent is out of rotation: who took it out (a plugin's name)."""
    quarantine_reason: str | None = None
    on_trial: bool = False
    """Quarantined, but admitted one task at a time (``quarantine(..., trial=True)``)."""
    sleeping: bool = False
    """Put to sleep (a ``sleep`` control message through the plugin context): offered nothing
    until woken."""


class TaskView(CoreBody):
    task_id: str
    task_type: str
    status: TaskStatus
    agent_id: str | None
    required_capabilities: list[str]
    priority: Priority
    payload: CarriedJson = None
    metadata: CarriedMetadata = Field(default_factory=dict)
    attempts: int
    success: bool | None = None
    result: CarriedJson = None
    error: str | None = None
    created_at: float
    assigned_at: float | None = None
    finished_at: float | None = None
    not_before: float | None = None
    """A ``scheduled`` task is queued at this Unix time."""
    next_attempt_at: float | None = None
    """A ``retrying`` task is queued again at this Unix time."""
    retry: RetryPolicy | None = None
    """The retry policy in force (the request's, its type's or the global one)."""
    history: list[Attempt] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    concurrency: ConcurrencyLimit | None = None
    tenant: str | None = None
    prefer_agents: list[str] = Field(default_factory=list)
    require_agent: str | None = None
    progress: float | None = None
    """The latest fraction done its agent reported (``task.progress``), if any."""
    progress_message: str | None = None
    progress_at: float | None = None
    """When the agent last reported progress: the execution timeout counts from here."""


class PluginInfo(CoreBody):
    name: str
    version: str | None
    hooks: list[str]
    health: HealthStatus
    failures: int = 0
    last_error: str | None = None
    vetoes: int = 0
    """Agents and tasks this plugin refused since the core started."""


class OkReply(CoreBody):
    ok: Literal[True] = True


class RegisterReply(OkReply):
    agent_id: str
    assign_subject: str
    heartbeat_interval_s: float


class DeregisterReply(OkReply):
    requeued: list[str]


class DelegateReply(OkReply):
    task_id: str
    status: TaskStatus
    agent_id: str | None


class TaskReply(OkReply):
    task: TaskView


class TasksReply(OkReply):
    tasks: list[TaskView]
    next_cursor: str | None = None
    """Set when more tasks follow: pass it as ``cursor`` for the next page."""


class AgentsReply(OkReply):
    agents: list[AgentView]
    next_cursor: str | None = None
    """Set when more agents follow: pass it as ``cursor`` for the next page."""


class PluginsReply(OkReply):
    plugins: list[PluginInfo]


class ErrorBody(CoreBody):
    code: ErrorCode
    message: str


class ErrorReply(CoreBody):
    ok: Literal[False] = False
    error: ErrorBody
