"""What the core sends one agent (an offer, a control message), and its answer to an offer."""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field

from .bodies import CoreBody
from .enums import Priority
from .identifiers import CarriedJson, CarriedMetadata

__all__ = [
    "ControlAction",
    "ControlMessage",
    "Offer",
    "OfferReply",
]


class Offer(CoreBody):
    """What the core sends on ``agent.<agent_id>.assign``."""

    task_id: str
    task_type: str
    required_capabilities: list[str]
    priority: Priority
    payload: CarriedJson = None
    metadata: CarriedMetadata = Field(default_factory=dict)
    attempt: int = 1
    depends_on: list[str] = Field(default_factory=list)
    """The tasks this one waited for, all completed: ``task.get`` reads their results."""


class ControlAction(enum.StrEnum):
    SLEEP = "sleep"
    """Accept no new offers until ``wake``; tasks running go on."""
    WAKE = "wake"
    """Accept offers again."""
    DRAIN = "drain"
    """Accept no new offers, finish what is running, then deregister."""


class ControlMessage(CoreBody):
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
