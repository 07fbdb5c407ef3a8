"""Security on the wire: the audit record (``events.security.<decision>``) and reading it."""

from __future__ import annotations

import enum

from pydantic import Field

from .bodies import CoreBody, RequestBody

__all__ = ["AuditReply", "AuditRequest", "Decision", "SecurityEvent"]


class Decision(enum.StrEnum):
    """What the core decided about one request in secure mode; the event's subject token."""

    ALLOWED = "allowed"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"


class SecurityEvent(CoreBody):
    """One audit record: a denial, or an allowed request that changes state.

    Published on ``events.security.<decision>`` and appended to the audit log. The principal
    is the one the NATS server authenticated (never a name taken from the body).
    """

    event: str
    """``security.<decision>``."""
    timestamp: float
    decision: Decision
    operation: str
    """The endpoint asked, e.g. ``task-complete``."""
    principal: str | None = None
    """The authenticated principal's name; ``null`` when the caller was not recognised."""
    kind: str | None = None
    """``agent``, ``client``, ``monitor`` or ``admin``."""
    account: str | None = None
    """The NATS account the server says the request came from."""
    reason: str = ""
    agent_id: str | None = None
    task_id: str | None = None
    outcome: str | None = None
    """For an allowed request: ``ok`` or the error code it was answered with."""
    orchestrator_id: str = ""


class AuditRequest(RequestBody):
    """``orchestrator.audit``: the newest audit records, newest first."""

    principal: str | None = Field(default=None, max_length=128)
    denied: bool = False
    """Only denials (every decision but ``allowed``)."""
    limit: int = Field(default=100, ge=1, le=1000)


class AuditReply(CoreBody):
    ok: bool = True
    records: list[SecurityEvent]
