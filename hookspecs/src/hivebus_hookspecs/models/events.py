"""Events and alerts: what the core and its plugins publish under ``events.>``."""

from __future__ import annotations

import enum

from pydantic import ConfigDict, Field

from .bodies import CoreBody
from .identifiers import Metadata

__all__ = [
    "Alert",
    "AlertSeverity",
    "AlertStatus",
    "Event",
    "EventName",
    "PluginEvent",
    "ScaleDirection",
    "ScaleSignal",
]


class EventName(enum.StrEnum):
    AGENT_REGISTERED = "agent.registered"
    AGENT_DEREGISTERED = "agent.deregistered"
    AGENT_OFFLINE = "agent.offline"
    AGENT_QUARANTINED = "agent.quarantined"
    AGENT_RELEASED = "agent.released"
    TASK_SCHEDULED = "task.scheduled"
    TASK_BLOCKED = "task.blocked"
    TASK_QUEUED = "task.queued"
    TASK_ASSIGNED = "task.assigned"
    TASK_COMPLETED = "task.completed"
    TASK_FAILED = "task.failed"
    TASK_REQUEUED = "task.requeued"
    TASK_CANCELLED = "task.cancelled"
    TASK_EXPIRED = "task.expired"
    TASK_RETRYING = "task.retrying"
    TASK_DEAD = "task.dead"
    PLUGIN_VETOED = "plugin.vetoed"
    TASK_PROGRESS = "task.progress"
    TASK_DECLINED = "task.declined"
    """An agent refused an offer or let it time out (``outcome``: ``refused`` or ``timeout``)."""


class AlertSeverity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(CoreBody):
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


class ScaleDirection(enum.StrEnum):
    UP = "up"
    DOWN = "down"


class ScaleSignal(CoreBody):
    """A scaling signal for an external autoscaler, published on ``events.scale.<direction>``:
    one body whichever plugin decided, so an autoscaler needs to know no plugin."""

    direction: ScaleDirection
    capabilities: list[str]
    """The capability set that needs more (or fewer) agents; ``[]``: tasks that require none."""
    agents: int = Field(ge=1)
    """How many agents to add (``up``) or remove (``down``)."""
    reason: str = Field(default="", max_length=1024)
    source: str
    """The plugin that decided."""
    details: Metadata = Field(default_factory=dict)
    timestamp: float


class PluginEvent(CoreBody):
    """A plugin's own event, published on ``events.plugin.<plugin>.<name>``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event: str
    """``plugin.<plugin>.<name>``."""
    plugin: str
    timestamp: float


class Event(CoreBody):
    """A lifecycle event, published on ``events.<event>``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event: EventName
    timestamp: float
    agent_id: str | None = None
    task_id: str | None = None
