"""A fixture plugin that implements every hook, with its full signature, and records each call.

``test_plugin_host.py`` checks that it keeps up with ``hivebus_hookspecs.hookspecs`` (add a hook
and that test fails until it is implemented here) and that a real core calls every one of them.
"""

from __future__ import annotations

from collections import Counter

from hivebus_hookspecs import (
    AgentView,
    Event,
    OrchestratorView,
    PluginConfig,
    PluginContext,
    RegisterCommand,
    TaskAmendment,
    TaskView,
    hookimpl,
)
from pydantic import JsonValue

NAME = "every-hook"


class EveryHook:
    """A class, so the host builds one instance per core."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seen: dict[str, object] = {}

    def _saw(self, hook: str, **details: object) -> None:
        self.calls[hook] += 1
        self.seen.update(details)

    @hookimpl
    def hivebus_startup(
        self, orchestrator: OrchestratorView, config: PluginConfig, context: PluginContext
    ) -> None:
        self._saw(
            "hivebus_startup",
            orchestrator_id=orchestrator.orchestrator_id,
            settings=dict(config.plugin_settings(NAME)),
            context=context.name,
        )

    @hookimpl
    def hivebus_shutdown(self, orchestrator: OrchestratorView) -> None:
        self._saw("hivebus_shutdown", live_at_shutdown=orchestrator.live_count)

    @hookimpl
    def hivebus_agent_register(self, agent: AgentView) -> bool | None:
        self._saw("hivebus_agent_register")
        return None

    @hookimpl
    def hivebus_agent_registered(self, agent: AgentView) -> None:
        self._saw("hivebus_agent_registered")

    @hookimpl
    def hivebus_agent_removed(self, agent: AgentView, reason: str) -> None:
        self._saw("hivebus_agent_removed", removed=(agent.agent_id, reason))

    @hookimpl
    def hivebus_task_delegate(self, task: TaskView) -> TaskAmendment | bool | None:
        self._saw("hivebus_task_delegate")
        return {"metadata": {"seen_by": NAME}}

    @hookimpl
    async def hivebus_select_agent(self, task: TaskView, candidates: list[AgentView]) -> str | None:
        self._saw("hivebus_select_agent", candidates=len(candidates))
        return None

    @hookimpl
    def hivebus_task_assigned(self, task: TaskView, agent: AgentView) -> None:
        self._saw("hivebus_task_assigned")

    @hookimpl
    def hivebus_task_completed(self, task: TaskView) -> None:
        self._saw("hivebus_task_completed")

    @hookimpl
    def hivebus_task_failed(self, task: TaskView) -> None:
        self._saw("hivebus_task_failed", error=task.error)

    @hookimpl
    def hivebus_event(self, event: Event) -> None:
        self._saw("hivebus_event")

    @hookimpl
    def hivebus_status(self, orchestrator: OrchestratorView) -> dict[str, JsonValue] | None:
        self._saw("hivebus_status")
        return {"agents": sum(1 for _ in orchestrator.agents()), "queued": len(orchestrator.queue)}

    @hookimpl
    def hivebus_health(self) -> str | None:
        self._saw("hivebus_health")
        return "healthy"

    @hookimpl
    def hivebus_register_commands(self, register: RegisterCommand) -> None:
        self._saw("hivebus_register_commands")
        register(NAME, help="says every hook ran", run=lambda args: 0)
