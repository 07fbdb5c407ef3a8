"""Identifiers and the constrained values every body shares."""

from __future__ import annotations

from typing import Annotated

from pydantic import JsonValue, StringConstraints

__all__ = [
    "AGENT_ID_PATTERN",
    "MAX_JSON_DEPTH",
    "TASK_ID_PATTERN",
    "AgentId",
    "Capability",
    "Metadata",
    "TaskId",
]


AGENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
"""Agent ids become a subject token (``agent.<id>.assign``), so only subject-safe characters."""

TASK_ID_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
"""Task ids are dot-separated tokens: safe as a JetStream key and as a subject suffix."""

MAX_JSON_DEPTH = 64
"""The deepest nesting of arrays and objects a request body may have (the body is level 1)."""


AgentId = Annotated[str, StringConstraints(pattern=AGENT_ID_PATTERN)]
TaskId = Annotated[str, StringConstraints(pattern=TASK_ID_PATTERN, max_length=128)]
Capability = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
Metadata = dict[str, JsonValue]
