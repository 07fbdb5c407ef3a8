"""The context plugin: offer each task first to the agent with the most free context window."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from hivebus_hookspecs import AgentView, PluginConfig, TaskAmendment, TaskView, hookimpl
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from .selection import choose

__all__ = ["NAME", "ContextPlugin", "ContextSettings"]

NAME = "context"
CHARS_PER_TOKEN = 4
"""The usual rough ratio for English text and JSON; a hint, not a tokenizer."""

log = logging.getLogger("hivebus.context")


class ContextSettings(BaseModel):
    """``[plugin_config.context]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_context_usage: float = Field(default=0.9, ge=0.0, le=1.0)
    """Agents reporting more than this are skipped, unless every candidate does."""
    context_hint: bool = False
    """Add ``metadata.context_hint`` (payload size and a token estimate) to delegated tasks."""


class ContextPlugin:
    def __init__(self) -> None:
        self.settings = ContextSettings()
        self.error: str | None = None
        self.selections = 0
        self.reordered = 0
        self.saturated = 0
        self.hints = 0

    @hookimpl
    def hivebus_startup(self, config: PluginConfig) -> None:
        self.selections = self.reordered = self.saturated = self.hints = 0
        self.error = None
        try:
            self.settings = ContextSettings.model_validate(config.plugin_settings(NAME))
        except ValueError as exc:
            self.error = f"invalid settings, using defaults: {exc}"
            self.settings = ContextSettings()
            log.error(self.error)

    @hookimpl
    def hivebus_select_agent(self, candidates: list[AgentView]) -> str | None:
        choice = choose(candidates, self.settings.max_context_usage)
        if choice is None:
            return None
        self.selections += 1
        if choice.agent is not candidates[0]:
            self.reordered += 1
        if choice.saturated:
            self.saturated += 1
        return choice.agent.agent_id

    @hookimpl
    def hivebus_task_delegate(self, task: TaskView) -> TaskAmendment | None:
        if not self.settings.context_hint or "context_hint" in task.metadata:
            return None  # off by default; never overwrite a hint the delegator gave
        # Sized as compact JSON, which is what the agent receives; bounded by the core's
        # max_payload_bytes, so cheap enough to do inline.
        chars = len(json.dumps(task.payload, separators=(",", ":"), ensure_ascii=False))
        self.hints += 1
        hint: dict[str, JsonValue] = {
            "payload_chars": chars,
            "approx_tokens": math.ceil(chars / CHARS_PER_TOKEN),
        }
        return {"metadata": {"context_hint": hint}}

    @hookimpl
    def hivebus_status(self) -> dict[str, Any]:
        return {
            "max_context_usage": self.settings.max_context_usage,
            "selections": self.selections,
            "reordered": self.reordered,
            "saturated": self.saturated,
            "hints_added": self.hints,
            "error": self.error,
        }

    @hookimpl
    def hivebus_health(self) -> str:
        return "degraded" if self.error else "healthy"
