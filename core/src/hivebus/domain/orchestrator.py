"""The orchestrator: the domain's public face, composed of parts with one job each.

The in-memory registry and queue are a cache; the state port holds the truth. Every
transition is a compare-and-set on the stored revision, written *before* anyone is told, so
two coroutines, or two core replicas sharing a JetStream bucket, can never both assign a task
or overfill an agent: the loser of a race gets ``Conflict``, re-reads, and re-decides
(``cas.py``). Records are never mutated once cached: a transition builds an evolved copy,
stores it, and swaps it into the cache. A coroutine re-reads the cache after every await.

The parts, built here around one shared ``Kernel`` (config, ports, cache, figures, clocks):

- ``agents``: registration and seats, heartbeats, deregistration, going offline, pruning;
- ``placement``: selection order, slots, offers and their answers, feeding the queue;
- ``delegation``: a new task admitted, placed or queued;
- ``gates``: concurrency keys and rate limits, shared by replicas in the store;
- ``waiting``: scheduled, retrying and blocked tasks, moved on when their wait is over;
- ``transitions``: a placed task completed, cancelled, expired, timed out or requeued
  (what a failed attempt makes of it: ``retries``);
- ``progress``: the holder's progress reports, which keep a task alive;
- ``upkeep``: the periodic pass (liveness, deadlines, crash repairs, sweeps).

This facade holds the public API used by the wire layer, the runtime and plugins, the views,
and status and health.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from hivebus_hookspecs.models import (
    AgentView,
    CompleteRequest,
    DelegateReply,
    DelegateRequest,
    DeregisterReply,
    DeregisterRequest,
    HealthStatus,
    HeartbeatRequest,
    ProgressRequest,
    RegisterRequest,
    TaskStatus,
    TaskView,
)

from ..owned import cancel_and_wait
from .agents import Agents
from .delegation import Delegation
from .gates import Gates
from .interventions import Interventions
from .kernel import Kernel
from .placement import Placement
from .ports import EventPort, HealthCheck, HookPort, OfferPort, StatePort
from .progress import Progress
from .queue import PendingQueue
from .registry import AgentRecord, AgentRegistry
from .status import assess, build_status
from .transitions import Transitions
from .upkeep import Upkeep
from .waiting import Waiting

if TYPE_CHECKING:
    from ..config import HivebusConfig

__all__ = ["HealthCheck", "Orchestrator"]


class Orchestrator:
    """The domain core. Wire-agnostic: it speaks to the world only through its ports."""

    def __init__(
        self,
        config: HivebusConfig,
        offers: OfferPort,
        events: EventPort,
        hooks: HookPort,
        state: StatePort,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        max_message_bytes: int = 1024 * 1024,
    ) -> None:
        kernel = Kernel(config, offers, events, hooks, state, clock, monotonic, max_message_bytes)
        self._kernel = kernel
        self._hooks = hooks
        self._gates = Gates(kernel)
        self._placement = Placement(kernel, self._gates)
        self._waiting = Waiting(kernel, self._placement)
        self._delegation = Delegation(kernel, self._placement, self._waiting)
        self._transitions = Transitions(kernel, self._placement)
        self._agents = Agents(kernel, self._placement, self._transitions)
        self._upkeep = Upkeep(
            kernel, self._agents, self._placement, self._transitions, self._waiting, self._gates
        )
        self._interventions = Interventions(kernel, self._placement, self._delegation)
        self._progress = Progress(kernel, self._placement)
        self._waiting.finished = self._transitions.finished
        self._gates.on_freed = self._place_freed
        kernel.cache.observe = self._waiting.observe
        kernel.cache.written = self._gates.left_agent
        self._health_checks: list[HealthCheck] = []
        self._status_sections: dict[str, Callable[[], dict[str, Any]]] = {}
        self.config = config
        self.clock = clock
        self.monotonic = monotonic
        self.cache = kernel.cache
        self.stats = kernel.stats
        self.max_record_bytes = kernel.max_record_bytes
        """Every record must fit in one NATS message, as stored and as a view or an offer."""
        self.started_mono = monotonic()

    # --- lifecycle --------------------------------------------------------------------

    @property
    def orchestrator_id(self) -> str:
        return self.config.orchestrator_id

    def start(self) -> None:
        self._upkeep.start()

    def _place_freed(self) -> None:
        """A concurrency place was given back: offer the waiting work now."""
        if len(self.queue):
            self._kernel.spawn(self._placement.sweep(), name="hivebus-sweep-gate")

    async def stop(self) -> None:
        self._waiting.stop()
        await cancel_and_wait([self._upkeep.ticker, *self._kernel.background])
        self._upkeep.ticker = None
        self._kernel.background.clear()

    @property
    def registry(self) -> AgentRegistry:
        """The cached agents and their capability index (read-only for plugins)."""
        return self.cache.registry

    @property
    def queue(self) -> PendingQueue:
        """The cached waiting tasks (read-only for plugins)."""
        return self.cache.queue

    def add_health_check(self, check: HealthCheck) -> None:
        self._health_checks.append(check)

    def add_status_section(self, name: str, section: Callable[[], dict[str, Any]]) -> None:
        """A part of the status report the host knows and the domain does not (``state``)."""
        self._status_sections[name] = section

    # --- agents -------------------------------------------------------------------------

    async def register(self, req: RegisterRequest) -> AgentRecord:
        return await self._agents.register(req)

    def heartbeat(self, req: HeartbeatRequest) -> None:
        self._agents.heartbeat(req)

    async def deregister(self, req: DeregisterRequest) -> DeregisterReply:
        return await self._agents.deregister(req)

    async def mark_offline(self, agent_id: str) -> list[str]:
        """The agent went silent: stop offering to it and give its tasks to others."""
        return await self._agents.mark_offline(agent_id)

    async def prune_offline(self) -> list[str]:
        """Forget agents offline longer than ``agent_retention_s`` (or past ``max_agents``)."""
        return await self._agents.prune_offline()

    # --- tasks --------------------------------------------------------------------------

    async def delegate(self, req: DelegateRequest, task_id: str) -> DelegateReply:
        """Create the task, offer it to capable agents, queue it if nobody accepts."""
        return await self._delegation.delegate(req, task_id)

    async def complete(self, req: CompleteRequest) -> TaskView:
        return await self._transitions.complete(req)

    async def progress(self, req: ProgressRequest) -> None:
        """The holder's progress report: stored (it keeps the task alive), then announced."""
        await self._progress.report(req)

    async def cancel(self, task_id: str) -> TaskView:
        return (await self._transitions.cancel(task_id)).view()

    async def retry(
        self, task_id: str, delay_s: float = 0.0, by: str = "core", reason: str = ""
    ) -> TaskView:
        return await self._interventions.retry(task_id, delay_s, by, reason)

    async def dead_letter(self, task_id: str, by: str, reason: str = "") -> TaskView:
        return await self._interventions.dead_letter(task_id, by, reason)

    async def quarantine(
        self, agent_id: str, by: str, reason: str, trial: bool = False
    ) -> AgentView:
        return await self._interventions.quarantine(agent_id, by, reason, trial)

    async def sleep(self, agent_id: str, by: str, reason: str) -> AgentView:
        return await self._interventions.sleep(agent_id, by, reason)

    async def wake(self, agent_id: str, by: str, reason: str = "") -> AgentView:
        return await self._interventions.wake(agent_id, by, reason)

    async def release(self, agent_id: str, by: str = "core") -> AgentView:
        return await self._interventions.release(agent_id, by)

    def get_task(self, task_id: str) -> TaskView:
        return self._kernel.task(task_id).view()

    # --- time ---------------------------------------------------------------------------

    async def tick(self) -> None:
        """Everything that happens because time passed, in one pass."""
        await self._upkeep.tick()

    async def reap(self) -> list[str]:
        """Mark agents silent for ``offline_after_missed`` heartbeat intervals offline."""
        return await self._upkeep.reap()

    async def sweep(self) -> None:
        """Offer waiting work to every agent with a free slot."""
        await self._placement.sweep()

    def bus_lost(self) -> None:
        """The core lost NATS: silence from agents means nothing until it is back."""
        self._upkeep.bus_lost()

    def bus_restored(self) -> None:
        """Back on NATS: every agent gets a full window to be heard again."""
        self._upkeep.bus_restored()

    # --- views ------------------------------------------------------------------------

    def agents(self, after: str | None = None) -> Iterator[AgentView]:
        """Agents in order of their ids, from the first one after ``after``."""
        registry, view = self.registry, self._kernel.view
        ids = sorted(a.agent_id for a in registry if after is None or a.agent_id > after)
        for agent_id in ids:
            agent = registry.get(agent_id)
            if agent is not None:
                yield view(agent)

    def agent(self, agent_id: str) -> AgentView | None:
        """One agent's view, ``None`` when the core knows no such agent."""
        agent = self.registry.get(agent_id)
        return self._kernel.view(agent) if agent is not None else None

    def tasks(self, status: TaskStatus | None = None, skip: int = 0) -> Iterator[TaskView]:
        """Newest first; live tasks are listed before finished ones. ``skip`` the first ones."""
        chosen = (t for t in self.cache.newest_first() if status is None or t.status is status)
        return (t.view() for t in itertools.islice(chosen, skip, None))

    @property
    def live_count(self) -> int:
        return len(self.cache.live)

    async def health(self) -> tuple[HealthStatus, list[str]]:
        return assess(self, await self._hooks.health(), self._health_checks)

    async def status(self) -> dict[str, Any]:
        plugins = await self._hooks.health()
        status = build_status(self, plugins, assess(self, plugins, self._health_checks))
        for name, section in self._status_sections.items():
            status[name] = section()
        extensions = await self._hooks.status_contributions(self)
        if extensions:
            status["extensions"] = extensions
        return status
