"""What the hooks hand a plugin, typed as Protocols: the core satisfies them, plugins read them.

Small on purpose: these name what the shipped plugins use today, and are the seed of the plugin
context (read views, publishing, endpoints, state, timers, actions) that will grow from them.
Typed against these, a plugin depends on ``hivebus-hookspecs`` only, never on the core.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sized
from typing import Protocol, TypedDict

from pydantic import JsonValue

from .models import AgentView, TaskPriority, TaskStatus, TaskView

__all__ = ["OrchestratorView", "PluginConfig", "TaskAmendment"]


class OrchestratorView(Protocol):
    """The running core as a plugin may read it: no method here changes anything.

    Views are read on the core's event loop, so they never race its updates; they are cheap
    but not free (``agents()`` builds one ``AgentView`` per agent), so keep them off hot hooks.
    """

    @property
    def orchestrator_id(self) -> str:
        """This replica's name (``orchestrator_id`` in the configuration)."""
        ...

    def agents(self, after: str | None = None) -> Iterator[AgentView]:
        """This replica's agents in order of their ids, from the first one after ``after``."""
        ...

    def tasks(self, status: TaskStatus | None = None, skip: int = 0) -> Iterator[TaskView]:
        """Newest first, live tasks before finished ones; only ``status`` when given."""
        ...

    @property
    def queue(self) -> Sized:
        """The waiting tasks: ``len(orchestrator.queue)`` is the queue depth."""
        ...

    @property
    def live_count(self) -> int:
        """Tasks not finished yet: queued, offered or assigned."""
        ...


class PluginConfig(Protocol):
    """The core's configuration as a plugin may read it."""

    @property
    def orchestrator_id(self) -> str: ...

    def plugin_settings(self, name: str) -> Mapping[str, object]:
        """The ``[plugin_config.<name>]`` table, or ``{}``: validate it with your own model."""
        ...


class TaskAmendment(TypedDict, total=False):
    """What ``hivebus_task_delegate`` may return to change a task before it is placed."""

    priority: TaskPriority | str | int
    """A priority name (``low``, ``medium``, ``high``, ``critical``) or 1, 5, 8, 10."""
    required_capabilities: list[str]
    metadata: dict[str, JsonValue]
    """Merged key by key into the task's metadata."""
    payload: JsonValue
    """Replaces the payload."""
