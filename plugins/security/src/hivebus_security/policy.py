"""The policy: validated settings and the pure checks that turn them into refusal reasons."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from hivebus_hookspecs import AgentRole, AgentView, TaskView
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

__all__ = ["Policy"]


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

    _ids: re.Pattern[str] | None = PrivateAttr(default=None)
    _denied: re.Pattern[str] | None = PrivateAttr(default=None)

    def model_post_init(self, context: object) -> None:
        self._ids = _matcher(self.allowed_agent_ids or ())
        self._denied = _matcher(self.denied_capabilities)

    def agent_refusal(self, agent: AgentView) -> str | None:
        """Why ``agent`` may not register, or ``None``."""
        if self.allowed_roles is not None and agent.role not in self.allowed_roles:
            allowed = ", ".join(r.value for r in self.allowed_roles) or "none"
            return f"role {agent.role.value!r} is not allowed (allowed: {allowed})"
        if self.allowed_agent_ids is not None and (
            self._ids is None or not self._ids.fullmatch(agent.agent_id)
        ):
            return f"agent id {agent.agent_id!r} matches no allowed pattern"
        denied = self._denied_of(agent.capabilities)
        if denied:
            return f"denied capabilities: {', '.join(denied)}"
        missing = [k for k in self.required_agent_metadata_keys if k not in agent.metadata]
        if missing:
            return f"agent metadata lacks required keys: {', '.join(missing)}"
        return None

    def task_refusal(self, task: TaskView) -> str | None:
        """Why ``task`` may not be delegated, or ``None``."""
        denied = self._denied_of(task.required_capabilities)
        if denied:
            return f"denied capabilities: {', '.join(denied)}"
        missing = [k for k in self.required_metadata_keys if k not in task.metadata]
        if missing:
            return f"task metadata lacks required keys: {', '.join(missing)}"
        limit = self.max_payload_keys
        if limit is not None and isinstance(task.payload, dict) and len(task.payload) > limit:
            return f"payload has {len(task.payload)} keys, more than max_payload_keys={limit}"
        return None

    def _denied_of(self, capabilities: Iterable[str]) -> list[str]:
        if self._denied is None:
            return []
        return [cap for cap in capabilities if self._denied.fullmatch(cap)]
