"""The automation plugin: failure streaks as a health signal, priority boosts at delegation.

It cannot retry a failed task itself: a hook has no way to delegate, and re-running work is a
decision for the delegator. What it can do honestly is notice, and say so in health and status.
"""

from __future__ import annotations

import logging
from typing import Any

from hivebus_hookspecs import (
    AgentView,
    PluginConfig,
    TaskAmendment,
    TaskPriority,
    TaskView,
    hookimpl,
)
from pydantic import BaseModel, ConfigDict, Field

from .streaks import Streaks

__all__ = ["NAME", "AutomationPlugin", "AutomationSettings"]

NAME = "automation"

log = logging.getLogger("hivebus.automation")


class AutomationSettings(BaseModel):
    """``[plugin_config.automation]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failure_threshold: int = Field(default=3, ge=1)
    """Consecutive failures of one agent or one task type that turn this plugin degraded."""
    priority_boost_types: list[str] = Field(default_factory=list)
    """Task types delegated below ``high`` are raised to ``high``."""


class AutomationPlugin:
    def __init__(self) -> None:
        self.settings = AutomationSettings()
        self.error: str | None = None
        self._reset()

    def _reset(self) -> None:
        self.agents = Streaks()
        self.task_types = Streaks()
        self.failures_seen = 0
        self.boosted = 0

    @hookimpl
    def hivebus_startup(self, config: PluginConfig) -> None:
        self._reset()
        self.error = None
        try:
            self.settings = AutomationSettings.model_validate(config.plugin_settings(NAME))
        except ValueError as exc:
            self.error = f"invalid settings, using defaults: {exc}"
            self.settings = AutomationSettings()
            log.error(self.error)

    @hookimpl
    def hivebus_task_delegate(self, task: TaskView) -> TaskAmendment | None:
        if task.task_type in self.settings.priority_boost_types and (
            task.priority < TaskPriority.HIGH
        ):
            self.boosted += 1
            return {"priority": "high"}
        return None

    @hookimpl
    def hivebus_task_failed(self, task: TaskView) -> None:
        self.failures_seen += 1
        threshold = self.settings.failure_threshold
        # No agent when the core gave up on a task whose agents kept leaving: a task-type
        # streak only, since no single agent failed it.
        if task.agent_id is not None and self.agents.fail(task.agent_id) == threshold:
            log.warning(
                "agent failure streak reached the threshold",
                extra={"agent_id": task.agent_id, "threshold": threshold},
            )
        if self.task_types.fail(task.task_type) == threshold:
            log.warning(
                "task type failure streak reached the threshold",
                extra={"task_type": task.task_type, "threshold": threshold},
            )

    @hookimpl
    def hivebus_task_completed(self, task: TaskView) -> None:
        if task.agent_id is not None:
            self.agents.clear(task.agent_id)
        self.task_types.clear(task.task_type)

    @hookimpl
    def hivebus_agent_removed(self, agent: AgentView) -> None:
        self.agents.clear(agent.agent_id)  # a warning about an agent that left is stale

    @hookimpl
    def hivebus_status(self) -> dict[str, Any]:
        threshold = self.settings.failure_threshold
        return {
            "failure_threshold": threshold,
            "failing_agents": self.agents.at_least(threshold),
            "failing_task_types": self.task_types.at_least(threshold),
            "failures_seen": self.failures_seen,
            "priority_boosts": self.boosted,
            "error": self.error,
        }

    @hookimpl
    def hivebus_health(self) -> str:
        threshold = self.settings.failure_threshold
        if self.error or self.agents.at_least(threshold) or self.task_types.at_least(threshold):
            return "degraded"
        return "healthy"
