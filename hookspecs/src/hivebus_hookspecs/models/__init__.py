"""The wire contract as pydantic models.

These models are the single source of truth for every body that crosses NATS: the service
decodes requests with them, the SDK and client build requests with them, hooks receive them,
and subjects.md describes them. Request models forbid unknown fields so a typo is an error,
not a silently ignored option.

One module per part of the contract: ``identifiers`` and ``enums`` (the values bodies share),
``requests`` (what clients send), ``agent_messages`` (offers and control messages to an agent),
``replies`` (replies and the views they carry), ``events`` (events and alerts).
"""

from .agent_messages import (
    ControlAction,
    ControlMessage,
    Offer,
    OfferReply,
)
from .enums import (
    AgentRole,
    AgentState,
    ErrorCode,
    HealthStatus,
    Priority,
    TaskPriority,
    TaskStatus,
)
from .events import (
    Alert,
    AlertSeverity,
    AlertStatus,
    Event,
    EventName,
    PluginEvent,
)
from .identifiers import (
    AGENT_ID_PATTERN,
    MAX_JSON_DEPTH,
    TASK_ID_PATTERN,
    AgentId,
    Capability,
    TaskId,
)
from .replies import (
    AgentsReply,
    AgentView,
    DelegateReply,
    DeregisterReply,
    ErrorBody,
    ErrorReply,
    OkReply,
    PluginInfo,
    PluginsReply,
    RegisterReply,
    TaskReply,
    TasksReply,
    TaskView,
)
from .requests import (
    AgentsRequest,
    CompleteRequest,
    DelegateRequest,
    DeregisterRequest,
    EmptyRequest,
    HeartbeatRequest,
    RegisterRequest,
    TaskRequest,
    TasksRequest,
)
from .security import (
    AuditReply,
    AuditRequest,
    Decision,
    SecurityEvent,
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
    "AuditReply",
    "AuditRequest",
    "Capability",
    "CompleteRequest",
    "ControlAction",
    "ControlMessage",
    "Decision",
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
    "SecurityEvent",
    "TaskId",
    "TaskPriority",
    "TaskReply",
    "TaskRequest",
    "TaskStatus",
    "TaskView",
    "TasksReply",
    "TasksRequest",
]
