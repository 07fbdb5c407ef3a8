"""What the hooks hand a plugin, typed as Protocols: the core satisfies them, plugins read them.

Small on purpose: these name what the shipped plugins use today, and are the seed of the plugin
context (read views, publishing, endpoints, state, timers, actions) that will grow from them.
Typed against these, a plugin depends on ``hivebus-hookspecs`` only, never on the core.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sized
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypedDict, TypeVar

from pydantic import BaseModel, JsonValue

from .models import (
    AgentRole,
    AgentView,
    Alert,
    AlertSeverity,
    ControlAction,
    DelegateReply,
    ErrorCode,
    ScaleDirection,
    ScaleSignal,
    TaskPriority,
    TaskStatus,
    TaskView,
)
from .readings import AgentCounts, AgentReading, CapacityGroup

__all__ = [
    "AlertBook",
    "EndpointError",
    "EndpointHandler",
    "HookTime",
    "KeyValueStore",
    "ObjectStore",
    "OrchestratorView",
    "PluginConfig",
    "PluginContext",
    "TaskAmendment",
    "TimerCallback",
    "bucket_key",
]


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


class KeyValueStore(Protocol):
    """A plugin's own key-value bucket: JSON values, kept across restarts (JetStream) and the
    same for every core replica."""

    async def get(self, key: str) -> JsonValue:
        """The value under ``key``, ``None`` when there is none."""
        ...

    async def put(self, key: str, value: JsonValue) -> None:
        """Store ``value`` (last writer wins)."""
        ...

    async def update(
        self, key: str, change: Callable[[JsonValue], JsonValue | Awaitable[JsonValue]]
    ) -> JsonValue:
        """Store ``change(current)`` with compare-and-set, calling ``change`` again on the
        newer value when another replica wrote first; returns what was stored."""
        ...

    async def delete(self, key: str) -> None: ...

    async def delete_if(self, key: str, condition: Callable[[JsonValue], bool]) -> bool:
        """Delete ``key`` if ``condition(current)`` holds, with compare-and-set: when another
        replica wrote first, ``condition`` judges the newer value. True when deleted."""
        ...

    async def keys(self) -> list[str]: ...


def bucket_key(prefix: str, name: str) -> str:
    """A key for ``name`` under ``prefix`` in a plugin's bucket, valid whatever ``name`` holds:
    ``<prefix>.<readable part>.<short hash>``; the hash keeps apart names that differ only in
    characters a key may not hold (``a/b`` and ``a_b``)."""
    readable = re.sub(r"[^-\w]", "_", name, flags=re.ASCII)[:64]  # JetStream keys are ASCII
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:10]
    return f"{prefix}.{readable}.{digest}"


class ObjectStore(Protocol):
    """A plugin's own object store: named blobs of any size (chunked by JetStream)."""

    async def put(self, name: str, data: bytes) -> None: ...

    async def get(self, name: str) -> bytes | None: ...

    async def delete(self, name: str) -> None: ...

    async def list(self) -> list[str]: ...


class AlertBook(Protocol):
    """One alert per cause across every core replica, with ``resolved`` when it is gone.

    Level-triggered: call ``fire`` on every evaluation while the cause holds and ``resolve``
    when it no longer does. The book keeps one record per fingerprint in the plugin's bucket
    (keys ``alert.*``), so the alert is published once however many replicas see the cause,
    and ``resolved`` once, when none does any more.
    """

    async def fire(
        self,
        severity: AlertSeverity | str,
        summary: str,
        *,
        fingerprint: str,
        details: Mapping[str, JsonValue] | None = None,
    ) -> bool:
        """This replica sees the cause now; True when this call published the alert (it was
        not firing, and not resolved within the book's ``cooldown_s``)."""
        ...

    async def resolve(
        self, fingerprint: str, *, details: Mapping[str, JsonValue] | None = None
    ) -> bool:
        """This replica no longer sees the cause; True when this call published
        ``resolved`` (no other replica sees it either)."""
        ...

    def firing(self) -> list[str]:
        """The fingerprints this replica knows to be firing."""
        ...

    async def recall(self) -> None:
        """Pick up the causes still firing in the bucket (an earlier run's), once, so that
        ``firing()`` lists them and they get resolved; ``fire`` and ``resolve`` do it first."""
        ...


EndpointHandler = Callable[[dict[str, Any]], "dict[str, Any] | Awaitable[dict[str, Any]]"]
"""Answers a request on ``plugin.<name>.<endpoint>``: the request object in, the reply's fields
out (``ok: true`` is added). Raising ``EndpointError`` answers that error; running past the
core's ``request_timeout_s`` answers ``unavailable``, anything else ``internal_error`` (both
count against the plugin's health)."""

TimerCallback = Callable[[], "object | Awaitable[object]"]

S = TypeVar("S", bound=BaseModel)


class EndpointError(Exception):
    """Raised by an endpoint handler: the caller gets ``{"ok": false, "error": {code, message}}``
    with this code (one of the core's error codes; ``invalid_request`` by default)."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.INVALID_REQUEST) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class HookTime(NamedTuple):
    """Time one plugin's implementation of one hook took, summed since the core started."""

    plugin: str
    hook: str
    calls: int
    seconds: float
    """Wall time of the calls, awaited results included (failed and vetoing calls too)."""


class PluginContext(Protocol):
    """What a plugin may read and do, handed to it by ``hivebus_startup(context)``.

    One context per plugin and core. Actions go through the core's own transitions: they are
    compare-and-set on the shared state (safe with replicas) and produce the usual events.
    """

    @property
    def name(self) -> str:
        """The plugin's name (its entry point's name)."""
        ...

    @property
    def config(self) -> Mapping[str, Any]:
        """The plugin's raw ``[plugin_config.<name>]`` table."""
        ...

    @property
    def data_dir(self) -> Path:
        """The core's data directory (``data_dir`` in the configuration); a plugin keeps its
        files under ``data_dir / 'plugins' / name``."""
        ...

    def settings(self, model: type[S]) -> S:
        """The configuration table validated by ``model`` (raises ``ValueError`` naming the
        offending settings; the plugin is then marked unhealthy)."""
        ...

    # reading
    def agents(self) -> list[AgentView]: ...

    def agent(self, agent_id: str) -> AgentView | None: ...

    def tasks(self, status: TaskStatus | None = None, limit: int = 100) -> list[TaskView]: ...

    def task(self, task_id: str) -> TaskView | None: ...

    def queue_depth(self) -> dict[str, dict[str, int]]:
        """Waiting tasks by priority (``by_priority``) and by capability (``by_capability``)."""
        ...

    # readings: plain figures, no view per agent (see ``hivebus_hookspecs.readings``)
    def capacity(self) -> list[CapacityGroup]:
        """This replica's live agents summed by exact capability set (sorted by set): how
        many, their slots, busy slots, busy and full agents, sleepers, quarantined."""
        ...

    def agent_counts(self) -> dict[AgentRole, AgentCounts]:
        """This replica's agents by role (every role, zeros included): live, busy,
        quarantined, sleeping, offline."""
        ...

    def context_usage(self) -> dict[str, float]:
        """The context window usage each live agent last reported (those that did), by id."""
        ...

    def roster(self) -> list[AgentReading]:
        """Every agent of this replica as a light tuple (``AgentReading``: the fields of its
        view an evaluation uses), in order of their ids, as ``agents()`` lists them."""
        ...

    async def status(self) -> dict[str, Any]:
        """The figures of ``orchestrator.status``."""
        ...

    def hook_times(self) -> list[HookTime]:
        """How long every loaded plugin's hooks took on this core, by plugin and hook: what
        a plugin costs the requests it sits on."""
        ...

    # announcing
    def publish(self, name: str, **fields: JsonValue) -> None:
        """Publish ``events.plugin.<plugin>.<name>``."""
        ...

    def alert(
        self,
        severity: AlertSeverity | str,
        summary: str,
        *,
        fingerprint: str,
        details: Mapping[str, JsonValue] | None = None,
        resolved: bool = False,
    ) -> Alert:
        """Publish an alert on ``events.alert.<severity>``; ``resolved`` when the cause is
        gone (same ``fingerprint``)."""
        ...

    def scale(
        self,
        direction: ScaleDirection | str,
        capabilities: list[str],
        agents: int,
        *,
        reason: str = "",
        details: Mapping[str, JsonValue] | None = None,
    ) -> ScaleSignal:
        """Publish a scaling signal on ``events.scale.<direction>`` (``up`` or ``down``): an
        external autoscaler should add (or remove) ``agents`` agents with ``capabilities``.
        De-duplicating across replicas is the caller's job (claim it in ``kv``)."""
        ...

    def alert_book(self, *, stale_after_s: float = 60.0, cooldown_s: float = 0.0) -> AlertBook:
        """The plugin's alert book (one per plugin and core; a later call changes its
        settings). A replica that has not confirmed a cause for ``stale_after_s`` no longer
        holds it firing; a resolved cause fires again no sooner than ``cooldown_s`` later."""
        ...

    # serving and keeping state
    async def serve(self, endpoint: str, handler: EndpointHandler) -> str:
        """Answer requests on ``plugin.<plugin>.<endpoint>``; returns the subject."""
        ...

    @property
    def kv(self) -> KeyValueStore: ...

    @property
    def objects(self) -> ObjectStore: ...

    def every(self, interval_s: float, callback: TimerCallback, *, name: str = "timer") -> None:
        """Call ``callback`` every ``interval_s`` seconds until the core stops."""
        ...

    def at(self, when: float, callback: TimerCallback, *, name: str = "timer") -> None:
        """Call ``callback`` once at Unix time ``when``."""
        ...

    # acting, through the core's transitions
    async def delegate(
        self,
        task_type: str,
        required_capabilities: list[str] | None = None,
        **fields: JsonValue,
    ) -> DelegateReply:
        """``task.delegate`` with these fields (``task_id``, ``priority``, ``payload`` ...)."""
        ...

    async def cancel(self, task_id: str) -> TaskView: ...

    async def retry(self, task_id: str, delay_s: float = 0.0, reason: str = "") -> TaskView:
        """Queue a failed, expired or cancelled task again, offered no sooner than
        ``delay_s`` from now (the delay is stored: it survives a restart of the core)."""
        ...

    async def dead_letter(self, task_id: str, reason: str = "") -> TaskView:
        """Declare a failed, retrying, expired or cancelled task ``dead`` at once, whatever
        its retry policy has left (``events.task.dead`` with ``reason``); idempotent."""
        ...

    async def quarantine(self, agent_id: str, reason: str, *, trial: bool = False) -> AgentView:
        """Take an agent out of rotation: it is offered nothing until ``release``.
        ``trial``: meanwhile it is offered one task at a time (``AgentView.on_trial``), as a
        circuit breaker's half-open state wants; quarantine it again without ``trial`` to stop."""
        ...

    async def release(self, agent_id: str) -> AgentView: ...

    async def control(self, agent_id: str, action: ControlAction | str, reason: str = "") -> None:
        """Send the agent a control message (``sleep``, ``wake``, ``drain``)."""
        ...

    async def sleep(self, agent_id: str, reason: str = "") -> AgentView:
        """Put the agent to sleep: stored on its record first (``AgentView.sleeping``: no
        replica offers it anything), then ``sleep`` is sent on its control subject. What it
        holds it finishes. Announced as ``events.agent.sleeping``; idempotent."""
        ...

    async def wake(self, agent_id: str, reason: str = "") -> AgentView:
        """Wake a sleeping agent: ``wake`` on its control subject, then stored awake (and
        offered the waiting work). Announced as ``events.agent.woken``; idempotent."""
        ...
