"""The wire contract as pydantic models.

These models are the single source of truth for every body that crosses NATS: the service
decodes requests with them, the SDK and client build requests with them, hooks receive them,
and subjects.md describes them. Request models forbid unknown fields so a typo is an error,
not a silently ignored option.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    StringConstraints,
)

__all__ = [
    "AGENT_ID_PATTERN",
    "MAX_JSON_DEPTH",
    "TASK_ID_PATTERN",
    "AgentId",
    "AgentRole",
    "AgentState",
    "AgentView",
    "AgentsReply",
    "AgentsRequest",
    "Alert",
    "AlertSeverity",
    "AlertStatus",
    "Capability",
    "CompleteRequest",
    "ControlAction",
    "ControlMessage",
    "DelegateReply",
    "DelegateRequest",
    "DeregisterReply",
    "DeregisterRequest",
    "EmptyRequest",
    "ErrorBody",
    "ErrorCode",
    "ErrorReply",
    "Event",
    "EventName",
    "HealthStatus",
    "HeartbeatRequest",
    "Offer",
    "OfferReply",
    "OkReply",
    "PluginEvent",
    "PluginInfo",
    "PluginsReply",
    "Priority",
    "RegisterReply",
    "RegisterRequest",
    "TaskId",
    "TaskPriority",
    "TaskReply",
    "TaskRequest",
    "TaskStatus",
    "TaskView",
    "TasksReply",
    "TasksRequest",
]

AGENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
"""Agent ids become a subject token (``agent.<id>.assign``), so only subject-safe characters."""

TASK_ID_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
"""Task ids are dot-separated tokens: safe as a JetStream key and as a subject suffix."""

MAX_JSON_DEPTH = 64
"""The deepest nesting of arrays and objects a request body may have (the body is level 1)."""


class _Wire(BaseModel):
    """A request body: unknown fields are rejected so typos surface as errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    """A body the core produces; readers should ignore fields they do not know."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class AgentRole(enum.StrEnum):
    COORDINATOR = "coordinator"
    SPECIALIST = "specialist"
    WORKER = "worker"
    MONITOR = "monitor"
    SECURITY = "security"
    OPTIMIZER = "optimizer"


class TaskPriority(enum.IntEnum):
    """The legacy integer priorities; on the wire they travel as their lower-case names."""

    LOW = 1
    MEDIUM = 5
    HIGH = 8
    CRITICAL = 10

    @classmethod
    def parse(cls, value: object) -> TaskPriority:
        """Accept a member, a name (any case) or one of the integers 1, 5, 8, 10."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        raise ValueError("priority must be one of low, medium, high, critical or 1, 5, 8, 10")


Priority = Annotated[
    TaskPriority,
    BeforeValidator(TaskPriority.parse),
    PlainSerializer(lambda p: p.name.lower(), return_type=str),
]


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.EXPIRED}
)


class AgentState(enum.StrEnum):
    ACTIVE = "active"
    OFFLINE = "offline"


class HealthStatus(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(HealthStatus).index(self)

    @classmethod
    def worst(cls, *statuses: HealthStatus) -> HealthStatus:
        return max(statuses, key=lambda s: s.rank, default=cls.HEALTHY)


class ErrorCode(enum.StrEnum):
    """Every error code a reply may carry; subjects.md documents each."""

    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNKNOWN_AGENT = "unknown_agent"
    UNKNOWN_TASK = "unknown_task"
    AGENT_EXISTS = "agent_exists"
    NOT_TASK_OWNER = "not_task_owner"
    INVALID_STATE = "invalid_state"
    NO_AGENT_AVAILABLE = "no_agent_available"
    OVER_CAPACITY = "over_capacity"
    MAX_AGENTS_REACHED = "max_agents_reached"
    REJECTED_BY_PLUGIN = "rejected_by_plugin"
    UNAVAILABLE = "unavailable"
    REPLY_TOO_LARGE = "reply_too_large"
    INTERNAL_ERROR = "internal_error"


AgentId = Annotated[str, StringConstraints(pattern=AGENT_ID_PATTERN)]
TaskId = Annotated[str, StringConstraints(pattern=TASK_ID_PATTERN, max_length=128)]
Capability = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
Metadata = dict[str, JsonValue]


# --- requests ---------------------------------------------------------------------------


class EmptyRequest(_Wire):
    """``orchestrator.status|plugins`` take an empty object."""


class AgentsRequest(_Wire):
    """``orchestrator.agents``: agents by id, a page at a time."""

    limit: int = Field(default=100, ge=1, le=10_000)
    cursor: str | None = Field(default=None, max_length=256)
    """The ``next_cursor`` of the previous page; opaque."""


class RegisterRequest(_Wire):
    agent_id: AgentId
    role: AgentRole = AgentRole.WORKER
    capabilities: list[Capability] = Field(default_factory=list, max_length=256)
    max_tasks: int = Field(default=1, ge=1, le=10_000)
    metadata: Metadata = Field(default_factory=dict)
    instance_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Identifies one run of the agent process: registering again with the same one (after a
    reconnect) is answered as a success; another process with the same agent id is refused
    with ``agent_exists`` until the first one is gone."""


class HeartbeatRequest(_Wire):
    agent_id: AgentId
    active_tasks: int | None = Field(default=None, ge=0)
    context_window_usage: float | None = Field(default=None, ge=0.0, le=1.0)


class DeregisterRequest(_Wire):
    agent_id: AgentId


class DelegateRequest(_Wire):
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


class CompleteRequest(_Wire):
    task_id: TaskId
    agent_id: AgentId
    success: bool = True
    result: JsonValue = None
    error: str | None = Field(default=None, max_length=8192)


class TaskRequest(_Wire):
    """``task.get`` and ``task.cancel``."""

    task_id: TaskId


class TasksRequest(_Wire):
    """``orchestrator.tasks``: live tasks first, newest first."""

    status: TaskStatus | None = None
    limit: int = Field(default=100, ge=1, le=10_000)
    cursor: str | None = Field(default=None, max_length=256)
    """The ``next_cursor`` of the previous page; opaque."""


# --- core -> agent offer --------------------------------------------------------------------


class Offer(_Out):
    """What the core sends on ``agent.<agent_id>.assign``."""

    task_id: str
    task_type: str
    required_capabilities: list[str]
    priority: Priority
    payload: JsonValue = None
    metadata: Metadata = Field(default_factory=dict)
    attempt: int = 1


class ControlAction(enum.StrEnum):
    SLEEP = "sleep"
    """Accept no new offers until ``wake``; tasks running go on."""
    WAKE = "wake"
    """Accept offers again."""
    DRAIN = "drain"
    """Accept no new offers, finish what is running, then deregister."""


class ControlMessage(_Out):
    """What the core sends on ``agent.<agent_id>.control`` (no reply expected)."""

    action: ControlAction
    reason: str | None = None
    source: str | None = None
    """Who asked: ``core``, or the name of the plugin that asked through the core."""


class OfferReply(BaseModel):
    """The agent's answer to an offer. Extra fields are tolerated from foreign clients."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    accept: bool
    reason: str | None = None


# --- views and replies ----------------------------------------------------------------------


class AgentView(_Out):
    agent_id: str
    role: AgentRole
    capabilities: list[str]
    max_tasks: int
    active_tasks: int
    state: AgentState
    metadata: Metadata = Field(default_factory=dict)
    context_window_usage: float | None = None
    registered_at: float
    last_seen: float
    quarantined_by: str | None = None
    """Set while the agent is out of rotation: who took it out (a plugin's name)."""
    quarantine_reason: str | None = None


class TaskView(_Out):
    task_id: str
    task_type: str
    status: TaskStatus
    agent_id: str | None
    required_capabilities: list[str]
    priority: Priority
    payload: JsonValue = None
    metadata: Metadata = Field(default_factory=dict)
    attempts: int
    success: bool | None = None
    result: JsonValue = None
    error: str | None = None
    created_at: float
    assigned_at: float | None = None
    finished_at: float | None = None
    not_before: float | None = None
    """A queued task retried after a delay is offered no sooner than this."""


class PluginInfo(_Out):
    name: str
    version: str | None
    hooks: list[str]
    health: HealthStatus
    failures: int = 0
    last_error: str | None = None
    vetoes: int = 0
    """Agents and tasks this plugin refused since the core started."""


class OkReply(_Out):
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


class ErrorBody(_Out):
    code: ErrorCode
    message: str


class ErrorReply(_Out):
    ok: Literal[False] = False
    error: ErrorBody


# --- events ---------------------------------------------------------------------------------


class EventName(enum.StrEnum):
    AGENT_REGISTERED = "agent.registered"
    AGENT_DEREGISTERED = "agent.deregistered"
    AGENT_OFFLINE = "agent.offline"
    AGENT_QUARANTINED = "agent.quarantined"
    AGENT_RELEASED = "agent.released"
    TASK_QUEUED = "task.queued"
    TASK_ASSIGNED = "task.assigned"
    TASK_COMPLETED = "task.completed"
    TASK_FAILED = "task.failed"
    TASK_REQUEUED = "task.requeued"
    TASK_CANCELLED = "task.cancelled"
    TASK_EXPIRED = "task.expired"
    PLUGIN_VETOED = "plugin.vetoed"


class AlertSeverity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(_Out):
    """An alert, published on ``events.alert.<severity>``: one body whoever raises it."""

    severity: AlertSeverity
    status: AlertStatus = AlertStatus.FIRING
    source: str
    """``core``, or the name of the plugin that raised it."""
    summary: str = Field(max_length=1024)
    details: Metadata = Field(default_factory=dict)
    fingerprint: str = Field(min_length=1, max_length=256)
    """Names the cause: the ``resolved`` alert carries the ``firing`` one's fingerprint."""
    timestamp: float


class PluginEvent(_Out):
    """A plugin's own event, published on ``events.plugin.<plugin>.<name>``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event: str
    """``plugin.<plugin>.<name>``."""
    plugin: str
    timestamp: float


class Event(_Out):
    """A lifecycle event, published on ``events.<event>``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event: EventName
    timestamp: float
    agent_id: str | None = None
    task_id: str | None = None
