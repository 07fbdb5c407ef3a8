"""The enumerations of the contract: roles, priorities, states, health, error codes."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

__all__ = [
    "AgentRole",
    "AgentState",
    "ErrorCode",
    "HealthStatus",
    "Priority",
    "TaskPriority",
    "TaskStatus",
]


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
    SCHEDULED = "scheduled"
    """Delegated with a delay: queued once its ``not_before`` has come."""
    BLOCKED = "blocked"
    """Waiting for the tasks it ``depends_on`` to complete."""
    QUEUED = "queued"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    RETRYING = "retrying"
    """An attempt failed; queued again at ``next_attempt_at``."""
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    DEAD = "dead"
    """Out of attempts: every attempt its retry policy allowed failed."""

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def is_waiting(self) -> bool:
        """Not in the queue yet: for a time to come or for other tasks."""
        return self in _WAITING


_FINAL = frozenset(
    {
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
        TaskStatus.EXPIRED,
        TaskStatus.DEAD,
    }
)
_WAITING = frozenset({TaskStatus.SCHEDULED, TaskStatus.BLOCKED, TaskStatus.RETRYING})


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
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
