"""The security plugin: veto registrations and delegations that break the policy."""

from __future__ import annotations

import logging
from typing import Any

from hivebus_hookspecs import AgentView, PluginConfig, Rejected, TaskView, hookimpl

from .policy import Policy

__all__ = ["NAME", "SecurityPlugin"]

NAME = "security"

log = logging.getLogger("hivebus.security")


class SecurityPlugin:
    """Allows everything until configured; refuses everything if its settings are invalid.

    Failing closed matters here: a typo in a policy must not silently open the bus.
    """

    def __init__(self) -> None:
        self.policy = Policy()
        self.agent_rules = self.policy.agent_rules()
        self.task_rules = self.policy.task_rules()
        self.error: str | None = None
        self.vetoes = {"agents": 0, "tasks": 0}
        self.last_veto: str | None = None

    @hookimpl
    def hivebus_startup(self, config: PluginConfig) -> None:
        self.vetoes = {"agents": 0, "tasks": 0}
        self.last_veto = None
        try:
            self.policy = Policy.model_validate(config.plugin_settings(NAME))
        except ValueError as exc:
            self.error = f"invalid settings, refusing every agent and task: {exc}"
            log.error(self.error)
        else:
            self.error = None
        self.agent_rules = self.policy.agent_rules()
        self.task_rules = self.policy.task_rules()

    @hookimpl
    def hivebus_agent_register(self, agent: AgentView) -> None:
        reason = self.error or self.agent_rules.refusal(agent)
        if reason is not None:
            self._veto("agents", reason, agent_id=agent.agent_id)

    @hookimpl
    def hivebus_task_delegate(self, task: TaskView) -> None:
        reason = self.error or self.task_rules.refusal(task)
        if reason is not None:
            self._veto("tasks", reason, task_id=task.task_id)

    def _veto(self, kind: str, reason: str, **ids: str) -> None:
        self.vetoes[kind] += 1
        self.last_veto = reason
        log.warning("vetoed by policy", extra={"reason": reason, **ids})
        raise Rejected(reason)

    @hookimpl
    def hivebus_status(self) -> dict[str, Any]:
        return {
            "vetoes": dict(self.vetoes),
            "last_veto": self.last_veto,
            "error": self.error,
            "policy": self.policy.model_dump(mode="json", exclude_defaults=True),
        }

    @hookimpl
    def hivebus_health(self) -> str:
        return "unhealthy" if self.error else "healthy"
