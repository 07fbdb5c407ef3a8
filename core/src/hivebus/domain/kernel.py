"""What every part of the orchestrator shares: configuration, ports, cache, figures, clocks.

The orchestrator is composed, not inherited: the facade (``orchestrator.py``) builds one
``Kernel`` and hands it to each part (``agents``, ``placement``, ``transitions``, ``upkeep``),
and the parts that need each other get each other explicitly at construction. A part's
dependencies are visible in its ``__init__``, and a part can be read (and tested) without the
others' private state; mixins would have put seventy methods back into one namespace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from hivebus_hookspecs.models import AgentState, AgentView, ErrorCode, Event, EventName

from ..errors import HivebusError
from .cache import StateCache
from .ports import Later
from .stats import Stats
from .tasks import ACTIVE

if TYPE_CHECKING:
    from ..config import HivebusConfig
    from .ports import EventPort, HookPort, OfferPort, StatePort
    from .registry import AgentRecord
    from .tasks import TaskRecord

__all__ = [
    "ACTIVE",
    "FAILURE_ROOM",
    "HISTORY_ROOM",
    "OUTCOME_ROOM",
    "RECORD_HEADROOM",
    "Kernel",
    "log",
]

log = logging.getLogger("hivebus.orchestrator")
"""One logger for the whole orchestrator, whichever part speaks."""


RECORD_HEADROOM = 4096
"""Bytes of a NATS message a stored record leaves to the subject and the JetStream headers."""
FAILURE_ROOM = 4 * 8192 + 256
"""Room a delegated task's record keeps for a failure report (an error of up to 8,192
characters), so a task that was accepted can always be finished, if only as failed."""
HISTORY_ROOM = 8192
"""Bytes a task's history may take in its record (as JSON): the newest attempts that fit."""
OUTCOME_ROOM = FAILURE_ROOM + HISTORY_ROOM
"""What a task's record keeps free for its ending: a failure report and its history."""


class Kernel:
    def __init__(
        self,
        config: HivebusConfig,
        offers: OfferPort,
        events: EventPort,
        hooks: HookPort,
        state: StatePort,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
        max_message_bytes: int,
    ) -> None:
        self.config = config
        self.max_record_bytes = max_message_bytes - RECORD_HEADROOM
        """Every record must fit in one NATS message, as stored and as a view or an offer."""
        self.offers = offers
        self.hooks = hooks
        self.state = state
        self._events = events
        self.clock = clock
        self.monotonic = monotonic
        self.cache = StateCache(
            state,
            config.task_retention,
            monotonic,
            on_forget=self._forget_stored,
            retention_weight=config.task_retention_bytes,
            tenant_weights=config.tenant_weights,
        )
        self.registry = self.cache.registry
        self.queue = self.cache.queue
        self.stats = Stats()
        self.background: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` in the background, owned here and cancelled at stop."""
        task = asyncio.create_task(coro, name=name)
        self.background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def _forget_stored(self, task_id: str) -> None:
        self.spawn(self.state.forget_task(task_id), name=f"hivebus-forget-{task_id}")

    def emit(self, name: EventName, **fields: Any) -> None:
        event = Event(event=name, timestamp=self.clock(), **fields)
        self._events.publish(event)
        if self.hooks.wants("hivebus_event"):
            self.hooks.notify("hivebus_event", event=event)

    def view(self, agent: AgentRecord) -> AgentView:
        return agent.view(*self._as_now(agent))

    def view_later(self, agent: AgentRecord) -> Later:
        """The agent as it is now, for a notification that builds the view at delivery."""
        return Later(partial(agent.view, *self._as_now(agent)))

    def _as_now(self, agent: AgentRecord) -> tuple[float | None, float | None, int]:
        """What an agent's view shows beside its record: last seen, context usage, load."""
        seen = self.cache.seen.get(agent.agent_id)
        last_seen = None if seen is None else self.clock() - (self.monotonic() - seen)
        agent_id = agent.agent_id
        return last_seen, self.cache.context.get(agent_id), self.registry.load(agent_id)

    def is_active(self, agent_id: str) -> bool:
        agent = self.registry.get(agent_id)
        return agent is not None and agent.state is AgentState.ACTIVE

    def check_metadata(self, metadata: dict[str, Any]) -> None:
        size = len(orjson.dumps(metadata))
        if size > self.config.max_metadata_bytes:
            raise HivebusError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"metadata is {size} bytes as JSON; the limit is "
                f"max_metadata_bytes={self.config.max_metadata_bytes}",
            )

    def task(self, task_id: str) -> TaskRecord:
        return known(self.cache.tasks.get(task_id), task_id)


def known_agent(agent: AgentRecord | None, agent_id: str) -> AgentRecord:
    """``agent``, or the ``unknown_agent`` error when there is none."""
    if agent is None:
        raise HivebusError(ErrorCode.UNKNOWN_AGENT, f"no registered agent {agent_id!r}")
    return agent


def known(task: TaskRecord | None, task_id: str) -> TaskRecord:
    """``task``, or the ``unknown_task`` error when there is none."""
    if task is None:
        raise HivebusError(ErrorCode.UNKNOWN_TASK, f"no task {task_id!r}")
    return task
