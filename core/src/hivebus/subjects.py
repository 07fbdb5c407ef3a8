"""Subject names of the wire contract, under an optional prefix (subjects.md lists them all)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hivebus_hookspecs.models import EventName

__all__ = ["Subjects", "plugin_bucket"]


@dataclass(frozen=True, slots=True)
class Subjects:
    """All subject names for one bus; ``prefix`` lets several hivebus buses share a NATS."""

    prefix: str = ""

    def _(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    @property
    def register(self) -> str:
        return self._("agent.register")

    @property
    def heartbeat(self) -> str:
        return self._("agent.heartbeat")

    @property
    def deregister(self) -> str:
        return self._("agent.deregister")

    def assign(self, agent_id: str) -> str:
        return self._(f"agent.{agent_id}.assign")

    def withdraw(self, agent_id: str) -> str:
        return self._(f"agent.{agent_id}.cancel")

    def control(self, agent_id: str) -> str:
        return self._(f"agent.{agent_id}.control")

    @property
    def delegate(self) -> str:
        return self._("task.delegate")

    @property
    def complete(self) -> str:
        return self._("task.complete")

    @property
    def get(self) -> str:
        return self._("task.get")

    @property
    def cancel(self) -> str:
        return self._("task.cancel")

    @property
    def retry(self) -> str:
        return self._("task.retry")

    @property
    def progress(self) -> str:
        return self._("task.progress")

    def task_updates(self, task_id: str) -> str:
        """Every event of one task: ``task.<task_id>.updates`` (a dotted id adds tokens)."""
        return self._(f"task.{task_id}.updates")

    @property
    def status(self) -> str:
        return self._("orchestrator.status")

    @property
    def agents(self) -> str:
        return self._("orchestrator.agents")

    @property
    def plugins(self) -> str:
        return self._("orchestrator.plugins")

    @property
    def tasks(self) -> str:
        return self._("orchestrator.tasks")

    @property
    def audit(self) -> str:
        """Secure mode only: the audit records (monitors and admins)."""
        return self._("orchestrator.audit")

    def event(self, name: EventName | str) -> str:
        return self._(f"events.{name}")

    def plugin(self, plugin: str, endpoint: str) -> str:
        """Where a plugin serves a request endpoint: ``plugin.<plugin>.<endpoint>``."""
        return self._(f"plugin.{plugin}.{endpoint}")

    def plugin_event(self, plugin: str, event_name: str) -> str:
        return self._(f"events.plugin.{plugin}.{event_name}")

    def alert(self, severity: str) -> str:
        return self._(f"events.alert.{severity}")

    def scale(self, direction: str) -> str:
        return self._(f"events.scale.{direction}")

    @property
    def all_events(self) -> str:
        return self._("events.>")


def plugin_bucket(prefix: str, plugin: str) -> str:
    """The name of ``plugin``'s key-value bucket under the subject ``prefix``; its object
    store is this name plus ``_objects`` (clients find the context plugin's store by it).

    Here rather than with the stores: an agent resolving a reference needs the name, not
    the core's plugin context."""
    stem = prefix.replace(".", "_") if prefix else "hivebus"
    return f"{stem}_plugin_{re.sub(r'[^A-Za-z0-9_-]', '_', plugin)}"
