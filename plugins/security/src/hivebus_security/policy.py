"""The policy: validated settings and the pure checks that turn them into refusal reasons."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hivebus_hookspecs import AgentRole, AgentView, TaskView
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AgentRules", "Policy", "TaskRules"]


def _matcher(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One compiled regex for a list of case-sensitive glob patterns (None: no patterns)."""
    parts = [fnmatch.translate(p) for p in patterns]
    return re.compile("|".join(parts)) if parts else None


class Policy(BaseModel):
    """``[plugin_config.security]``. The defaults allow everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_roles: list[AgentRole] | None = None
    """Roles an agent may register with; ``None`` allows every role."""
    allowed_agent_ids: list[str] | None = None
    """Glob patterns (``reviewer-*``) an agent id must match one of; ``None`` allows any id."""
    denied_capabilities: list[str] = Field(default_factory=list)
    """Glob patterns: no agent may offer, and no task may require, a matching capability."""
    required_metadata_keys: list[str] = Field(default_factory=list)
    """Keys every delegated task's ``metadata`` must carry."""
    required_agent_metadata_keys: list[str] = Field(default_factory=list)
    """Keys every registering agent's ``metadata`` must carry."""
    max_payload_keys: int | None = Field(default=None, ge=0)
    """Most top-level keys a task payload object may have (payloads that are not objects pass)."""

    def agent_rules(self) -> AgentRules:
        """The registration checks, compiled once for the hook to run on every agent."""
        return AgentRules(
            roles=None if self.allowed_roles is None else tuple(self.allowed_roles),
            ids=_matcher(self.allowed_agent_ids or ()),
            any_id=self.allowed_agent_ids is None,
            denied=_matcher(self.denied_capabilities),
            required_metadata_keys=tuple(self.required_agent_metadata_keys),
        )

    def task_rules(self) -> TaskRules:
        """The delegation checks, compiled once for the hook to run on every task."""
        return TaskRules(
            denied=_matcher(self.denied_capabilities),
            required_metadata_keys=tuple(self.required_metadata_keys),
            max_payload_keys=self.max_payload_keys,
        )


def _denied_of(denied: re.Pattern[str] | None, capabilities: Iterable[str]) -> list[str]:
    if denied is None:
        return []
    return [cap for cap in capabilities if denied.fullmatch(cap)]


@dataclass(frozen=True, slots=True)
class AgentRules:
    """A policy's registration checks as plain values: reading a pydantic model's private
    attributes costs more than the checks themselves."""

    roles: tuple[AgentRole, ...] | None
    ids: re.Pattern[str] | None
    any_id: bool
    denied: re.Pattern[str] | None
    required_metadata_keys: tuple[str, ...]

    def refusal(self, agent: AgentView) -> str | None:
        """Why ``agent`` may not register, or ``None``."""
        if self.roles is not None and agent.role not in self.roles:
            allowed = ", ".join(r.value for r in self.roles) or "none"
            return f"role {agent.role.value!r} is not allowed (allowed: {allowed})"
        if not self.any_id and (self.ids is None or not self.ids.fullmatch(agent.agent_id)):
            return f"agent id {agent.agent_id!r} matches no allowed pattern"
        denied = _denied_of(self.denied, agent.capabilities)
        if denied:
            return f"denied capabilities: {', '.join(denied)}"
        missing = [k for k in self.required_metadata_keys if k not in agent.metadata]
        if missing:
            return f"agent metadata lacks required keys: {', '.join(missing)}"
        return None


@dataclass(frozen=True, slots=True)
class TaskRules:
    """A policy's delegation checks as plain values, for the same reason."""

    denied: re.Pattern[str] | None
    required_metadata_keys: tuple[str, ...]
    max_payload_keys: int | None

    def refusal(self, task: TaskView) -> str | None:
        """Why ``task`` may not be delegated, or ``None``."""
        if self.denied is not None:
            denied = _denied_of(self.denied, task.required_capabilities)
            if denied:
                return f"denied capabilities: {', '.join(denied)}"
        if self.required_metadata_keys:
            metadata = task.metadata
            missing = [k for k in self.required_metadata_keys if k not in metadata]
            if missing:
                return f"task metadata lacks required keys: {', '.join(missing)}"
        limit = self.max_payload_keys
        if limit is not None and isinstance(task.payload, dict) and len(task.payload) > limit:
            return f"payload has {len(task.payload)} keys, more than max_payload_keys={limit}"
        return None
