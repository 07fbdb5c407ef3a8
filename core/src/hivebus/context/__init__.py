"""What a plugin may read and do: one context per plugin, built by the core at start-up.

A hook can watch and veto; the context acts. It gives a plugin its validated settings, read
views of the bus, its own events and alerts, request endpoints under ``plugin.<name>.*``, a
key-value store and an object store of its own, timers the host owns, and actions that go
through the core's own transitions (so they are compare-and-set, safe with replicas, and
produce the usual events). Nothing here lets a plugin write the core's state directly.
"""

from __future__ import annotations

import functools
import itertools
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hivebus_hookspecs.models import (
    AgentView,
    Alert,
    AlertSeverity,
    AlertStatus,
    ControlAction,
    ControlMessage,
    DelegateReply,
    DelegateRequest,
    PluginEvent,
    ScaleDirection,
    ScaleSignal,
    TaskStatus,
    TaskView,
)
from nats.js.api import StorageType
from pydantic import BaseModel, ValidationError

from ..codec import encode
from ..subjects import Subjects
from . import readings
from .alerts import CoreAlertBook
from .storage import LazyKeyValue, LazyObjects, StoreOpener, open_plugin_stores
from .timers import Callback, Report, TimerSet

if TYPE_CHECKING:
    from hivebus_hookspecs.context import EndpointHandler, HookTime
    from hivebus_hookspecs.models import AgentRole
    from hivebus_hookspecs.readings import AgentCounts, AgentReading, CapacityGroup
    from nats.js.client import JetStreamContext

    from ..adapters.events import EventPublisher
    from ..config import HivebusConfig
    from ..domain import Orchestrator

__all__ = ["CorePluginContext", "PluginSettingsError", "build_contexts"]

S = TypeVar("S", bound=BaseModel)

Serve = Callable[[str, "EndpointHandler"], Any]
HookTimes = Callable[[], "list[HookTime]"]


class PluginSettingsError(ValueError):
    """A plugin's configuration section does not fit the model it declared."""


class CorePluginContext:
    def __init__(
        self,
        name: str,
        orchestrator: Orchestrator,
        events: EventPublisher,
        subjects: Subjects,
        settings: Mapping[str, Any],
        stores: StoreOpener,
        report: Report,
        data_dir: Path,
        hook_times: HookTimes = list,
    ) -> None:
        self.name = name
        self._data_dir = data_dir
        self._hook_times = hook_times
        self.config: Mapping[str, Any] = settings
        """The plugin's raw configuration section (``[plugin_config.<name>]``)."""
        self.kv = LazyKeyValue(stores)
        self.objects = LazyObjects(stores)
        self.timers = TimerSet(name, report)
        self._orch = orchestrator
        self._events = events
        self._subjects = subjects
        self._endpoints: dict[str, EndpointHandler] = {}
        self._serve: Serve | None = None
        self._alert_book: CoreAlertBook | None = None

    # --- configuration ----------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The core's data directory; a plugin keeps its files under ``plugins/<name>``."""
        return self._data_dir

    def settings(self, model: type[S]) -> S:
        """The configuration section validated by ``model`` (a pydantic model)."""
        try:
            return model.model_validate(dict(self.config))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'section'}: {e['msg']}"
                for e in exc.errors(include_url=False)[:5]
            )
            raise PluginSettingsError(f"plugin_config.{self.name}: {problems}") from None

    # --- reading the bus --------------------------------------------------------------

    def agents(self) -> list[AgentView]:
        return list(self._orch.agents())

    def agent(self, agent_id: str) -> AgentView | None:
        return self._orch.agent(agent_id)

    def tasks(self, status: TaskStatus | None = None, limit: int = 100) -> list[TaskView]:
        return list(itertools.islice(self._orch.tasks(status), limit))

    def task(self, task_id: str) -> TaskView | None:
        cached = self._orch.cache.tasks.get(task_id)
        return cached.view() if cached is not None else None

    def queue_depth(self) -> dict[str, dict[str, int]]:
        """Waiting tasks counted by priority and by each required capability."""
        by_priority: Counter[str] = Counter()
        by_capability: Counter[str] = Counter()
        for task in self._orch.queue:
            by_priority[task.priority.name.lower()] += 1
            by_capability.update(task.required_list or ["*"])
        return {"by_priority": dict(by_priority), "by_capability": dict(by_capability)}

    # Readings: the registry summed or as light tuples, never a view per agent.

    def capacity(self) -> list[CapacityGroup]:
        return readings.capacity(self._orch.registry)

    def agent_counts(self) -> dict[AgentRole, AgentCounts]:
        return readings.agent_counts(self._orch.registry)

    def context_usage(self) -> dict[str, float]:
        return readings.context_usage(self._orch.registry, self._orch.cache.context)

    def roster(self) -> list[AgentReading]:
        return readings.roster(self._orch.registry, self._orch.cache.context)

    async def status(self) -> dict[str, Any]:
        return await self._orch.status()

    def hook_times(self) -> list[HookTime]:
        return self._hook_times()

    # --- announcing -------------------------------------------------------------------

    def publish(self, name: str, **fields: Any) -> None:
        """Publish ``events.plugin.<plugin>.<name>`` with ``fields``."""
        _check_token("event name", name)
        event = PluginEvent(
            event=f"plugin.{self.name}.{name}", plugin=self.name, timestamp=time.time(), **fields
        )
        self._events.publish_message(self._subjects.plugin_event(self.name, name), encode(event))

    def alert(
        self,
        severity: AlertSeverity | str,
        summary: str,
        *,
        fingerprint: str,
        details: Mapping[str, Any] | None = None,
        resolved: bool = False,
    ) -> Alert:
        """Publish an alert on ``events.alert.<severity>`` (``resolved``: the cause is gone)."""
        alert = Alert(
            severity=AlertSeverity(severity),
            status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
            source=self.name,
            summary=summary[:1024],
            details=dict(details or {}),
            fingerprint=fingerprint,
            timestamp=time.time(),
        )
        self._events.publish_message(self._subjects.alert(alert.severity.value), encode(alert))
        return alert

    def scale(
        self,
        direction: ScaleDirection | str,
        capabilities: list[str],
        agents: int,
        *,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> ScaleSignal:
        """Publish a scaling signal on ``events.scale.<direction>``, one body for every plugin."""
        signal = ScaleSignal(
            direction=ScaleDirection(direction),
            capabilities=list(capabilities),
            agents=agents,
            reason=reason[:1024],
            source=self.name,
            details=dict(details or {}),
            timestamp=time.time(),
        )
        self._events.publish_message(self._subjects.scale(signal.direction.value), encode(signal))
        return signal

    def alert_book(self, *, stale_after_s: float = 60.0, cooldown_s: float = 0.0) -> CoreAlertBook:
        """The plugin's alert book: one alert per cause across replicas (see ``alerts``)."""
        if self._alert_book is None:
            self._alert_book = CoreAlertBook(
                self.kv,
                self,
                self._orch.orchestrator_id,
                stale_after_s=stale_after_s,
                cooldown_s=cooldown_s,
            )
            self.every(stale_after_s, self._alert_book.sweep, name="alert-book-sweep")
        else:
            self._alert_book.stale_after_s = stale_after_s
            self._alert_book.cooldown_s = cooldown_s
        return self._alert_book

    # --- serving ----------------------------------------------------------------------

    async def serve(self, endpoint: str, handler: EndpointHandler) -> str:
        """Answer requests on ``plugin.<plugin>.<endpoint>``; returns the subject."""
        _check_token("endpoint", endpoint)
        self._endpoints[endpoint] = handler
        if self._serve is not None:
            await self._serve(endpoint, handler)
        return self._subjects.plugin(self.name, endpoint)

    async def bind(self, serve: Serve) -> None:
        """The service is up: endpoints asked for before now are served from now on."""
        self._serve = serve
        for endpoint, handler in self._endpoints.items():
            await serve(endpoint, handler)

    # --- acting -----------------------------------------------------------------------

    async def delegate(
        self, task_type: str, required_capabilities: list[str] | None = None, **fields: Any
    ) -> DelegateReply:
        request = DelegateRequest.model_validate(
            {"task_type": task_type, "required_capabilities": required_capabilities or [], **fields}
        )
        task_id = request.task_id or secrets.token_hex(16)
        return await self._orch.delegate(request, task_id)

    async def cancel(self, task_id: str) -> TaskView:
        return await self._orch.cancel(task_id)

    async def retry(self, task_id: str, delay_s: float = 0.0, reason: str = "") -> TaskView:
        return await self._orch.retry(task_id, delay_s, by=self.name, reason=reason)

    async def dead_letter(self, task_id: str, reason: str = "") -> TaskView:
        return await self._orch.dead_letter(task_id, by=self.name, reason=reason)

    async def quarantine(self, agent_id: str, reason: str, *, trial: bool = False) -> AgentView:
        return await self._orch.quarantine(agent_id, by=self.name, reason=reason, trial=trial)

    async def release(self, agent_id: str) -> AgentView:
        return await self._orch.release(agent_id, by=self.name)

    async def control(self, agent_id: str, action: ControlAction | str, reason: str = "") -> None:
        message = ControlMessage(
            action=ControlAction(action), reason=reason or None, source=self.name
        )
        self._events.publish_message(self._subjects.control(agent_id), encode(message))

    async def sleep(self, agent_id: str, reason: str = "") -> AgentView:
        # Stored before the agent is told: from then on no replica offers it anything.
        view = await self._orch.sleep(agent_id, by=self.name, reason=reason)
        await self.control(agent_id, ControlAction.SLEEP, reason)
        return view

    async def wake(self, agent_id: str, reason: str = "") -> AgentView:
        # Told before it is stored, so the first offer after the wake finds it awake.
        await self.control(agent_id, ControlAction.WAKE, reason)
        return await self._orch.wake(agent_id, by=self.name, reason=reason)

    # --- timers -----------------------------------------------------------------------

    def every(self, interval_s: float, callback: Callback, *, name: str = "timer") -> None:
        self.timers.every(interval_s, callback, name=name)

    def at(self, when: float, callback: Callback, *, name: str = "timer") -> None:
        self.timers.at(when, callback, name=name)

    async def close(self) -> None:
        await self.timers.stop()


def _check_token(what: str, value: str) -> None:
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise ValueError(f"{what} {value!r}: letters, digits, '-' and '_' only")


def build_contexts(
    names: list[str],
    orchestrator: Orchestrator,
    events: EventPublisher,
    subjects: Subjects,
    config: HivebusConfig,
    js: JetStreamContext | None,
    report: Callable[[str, str, BaseException], None],
    hook_times: HookTimes = list,
) -> dict[str, CorePluginContext]:
    """One context per plugin: stores on JetStream when ``js`` is given, else in memory."""
    stem = config.prefix.replace(".", "_") if config.prefix else "hivebus"
    storage = StorageType.FILE if config.kv_storage == "file" else StorageType.MEMORY
    contexts = {}
    for name in names:
        opener = StoreOpener(
            functools.partial(open_plugin_stores, js, stem, name, config.kv_replicas, storage)
        )
        contexts[name] = CorePluginContext(
            name,
            orchestrator,
            events,
            subjects,
            config.plugin_settings(name),
            opener,
            functools.partial(report, name),
            config.data_dir.absolute(),  # a plugin's files stay put whatever the cwd becomes
            hook_times,
        )
    return contexts
