"""Identifiers and the constrained values every body shares."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import JsonValue, StringConstraints, ValidatorFunctionWrapHandler, WrapValidator

__all__ = [
    "AGENT_ID_PATTERN",
    "MAX_JSON_DEPTH",
    "TASK_ID_PATTERN",
    "AgentId",
    "Capability",
    "CarriedJson",
    "CarriedMetadata",
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


def _carried(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    return value


CarriedJson = Annotated[JsonValue, WrapValidator(_carried)]
"""A JSON value a body the core builds carries as it is (a task's payload and result in a view
or an offer). It was checked as JSON when the request brought it in; walking it again for each
view a task is seen through cost more than the rest of its delegation once it was a few
kilobytes (36 KB: 0.9 ms per view, several views per task). A reader parsing a reply gets
JSON anyway. Hooks receive it shared with the core, not copied: read it, never change it."""

CarriedMetadata = dict[str, CarriedJson]
"""Metadata in a body the core builds: a fresh mapping, its values carried as they are."""
