"""The orchestrator: registry, queue, selection and the task lifecycle.

The in-memory registry and queue are a cache; the state port holds the truth. Every
transition is a compare-and-set on the stored revision, written *before* anyone is told, so
two coroutines, or two core replicas sharing a JetStream bucket, can never both assign a task
or overfill an agent: the loser of a race gets ``Conflict``, re-reads, and re-decides.

Records are never mutated once cached: a transition builds an evolved copy, stores it, and
swaps it into the cache. A coroutine re-reads the cache after every await.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Literal

import orjson
from hivebus_hookspecs.models import (
    AgentState,
    AgentView,
    CompleteRequest,
    DelegateReply,
    DelegateRequest,
    DeregisterReply,
    DeregisterRequest,
    ErrorCode,
    Event,
    EventName,
    HealthStatus,
    HeartbeatRequest,
    Offer,
    RegisterRequest,
    TaskPriority,
    TaskStatus,
    TaskView,
)

from ..errors import HivebusError
from ..owned import cancel_and_wait
from .cache import StateCache
from .cas import SKIP, Contended, Skip, delete_agent, update_agent, update_task
from .ports import (
    Conflict,
    EventPort,
    HealthCheck,
    HookPort,
    OfferOutcome,
    OfferPort,
    OfferResult,
    StatePort,
    StateUnavailable,
)
from .queue import PendingQueue
from .registry import AgentRecord, AgentRegistry
from .stats import Stats
from .status import assess, build_status
from .tasks import TaskRecord

if TYPE_CHECKING:
    from ..config import HivebusConfig

__all__ = ["HealthCheck", "Orchestrator"]

log = logging.getLogger("hivebus.orchestrator")


_ACTIVE = (TaskStatus.OFFERED, TaskStatus.ASSIGNED)

RECORD_HEADROOM = 4096
"""Bytes of a NATS message a stored record leaves to the subject and the JetStream headers."""
FAILURE_ROOM = 4 * 8192 + 256
"""Room a delegated task's record keeps for a failure report (an error of up to 8,192
characters), so a task that was accepted can always be finished, if only as failed."""


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
        self.config = config
        self.max_record_bytes = max_message_bytes - RECORD_HEADROOM
        """Every record must fit in one NATS message, as stored and as a view or an offer."""
        self._offers = offers
        self._events = events
        self._hooks = hooks
        self._state = state
        self.clock = clock
        self.monotonic = monotonic
        self.cache = StateCache(
            state,
            config.task_retention,
            monotonic,
            on_forget=self._forget_stored,
            retention_weight=config.task_retention_bytes,
        )
        self.stats = Stats()
        self._delegating: dict[str, asyncio.Future[DelegateReply]] = {}
        self._offering: set[str] = set()  # tasks whose offer this process is awaiting
        # agent -> slots this process is reserving right now (the write not yet stored): other
        # coroutines here pass over a slot that is being taken rather than race for it
        self._claimed: dict[str, int] = {}
        self._phantoms: dict[tuple[str, str], float] = {}  # (agent, task) -> first seen stale
        self._orphans: dict[str, float] = {}  # task -> first seen held by a departed agent
        # task -> (offers refused or unanswered in a row, monotonic time it may be offered again)
        self._refusals: dict[str, tuple[int, float]] = {}
        self._stray_seats: dict[str, float] = {}  # agent -> first seen seated but not active
        self._seats_checked = monotonic()
        self._bus_up = True
        self._background: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._health_checks: list[HealthCheck] = []
        self.started_mono = monotonic()

    # --- lifecycle --------------------------------------------------------------------

    @property
    def orchestrator_id(self) -> str:
        return self.config.orchestrator_id

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_forever(), name="hivebus-ticker")

    async def stop(self) -> None:
        await cancel_and_wait([self._ticker, *self._background])
        self._ticker = None
        self._background.clear()

    @property
    def registry(self) -> AgentRegistry:
        """The cached agents and their capability index (read-only for plugins)."""
        return self.cache.registry

    @property
    def queue(self) -> PendingQueue:
        """The cached waiting tasks (read-only for plugins)."""
        return self.cache.queue

    def _forget_stored(self, task_id: str) -> None:
        self._spawn(self._state.forget_task(task_id), name=f"hivebus-forget-{task_id}")

    def add_health_check(self, check: HealthCheck) -> None:
        self._health_checks.append(check)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def _emit(self, name: EventName, **fields: Any) -> None:
        event = Event(event=name, timestamp=self.clock(), **fields)
        self._events.publish(event)
        if self._hooks.wants("hivebus_event"):
            self._hooks.notify("hivebus_event", event=event)

    # --- agents -------------------------------------------------------------------------

    async def register(self, req: RegisterRequest) -> AgentRecord:
        existing = self.registry.get(req.agent_id)
        if (
            existing is not None
            and existing.state is AgentState.ACTIVE
            and req.instance_id is not None
            and existing.instance_id == req.instance_id
        ):
            self.cache.seen[req.agent_id] = self.monotonic()  # the same run, saying hello again
            return existing
        self._check_can_register(req.agent_id)
        if req.max_tasks > self.config.max_tasks_per_agent:
            raise HivebusError(
                ErrorCode.INVALID_REQUEST,
                f"max_tasks: {req.max_tasks} is more than this core's "
                f"max_tasks_per_agent={self.config.max_tasks_per_agent}",
            )
        self._check_metadata(req.metadata)
        caps = tuple(dict.fromkeys(req.capabilities))
        applicant = AgentRecord(
            agent_id=req.agent_id,
            role=req.role,
            capabilities=caps,
            max_tasks=req.max_tasks,
            metadata=dict(req.metadata),
            registered_at=self.clock(),
            instance_id=req.instance_id,
        )
        self.cache.registering.add(req.agent_id)
        try:
            agent = await self._store_registration(applicant)
        finally:
            self.cache.registering.discard(req.agent_id)
        self.cache.seen[agent.agent_id] = self.monotonic()
        log.info("agent registered", extra={"agent_id": agent.agent_id, "role": agent.role.value})
        self._emit(
            EventName.AGENT_REGISTERED,
            agent_id=agent.agent_id,
            role=agent.role.value,
            capabilities=list(caps),
            max_tasks=agent.max_tasks,
        )
        if self._hooks.wants("hivebus_agent_registered"):
            self._hooks.notify("hivebus_agent_registered", agent=self._view(agent))
        if len(self.queue):
            self._spawn(self._feed(agent.agent_id), name=f"hivebus-feed-{agent.agent_id}")
        return agent

    async def _store_registration(self, applicant: AgentRecord) -> AgentRecord:
        if self._hooks.wants("hivebus_agent_register"):
            await self._hooks.check_agent(applicant.view())
        agent_id = applicant.agent_id
        if not await self._state.claim_seat(agent_id):
            raise self._max_agents_reached()

        def renew(previous: AgentRecord | None) -> AgentRecord:
            self._check_not_active(agent_id)  # the world may have moved while we waited
            return applicant.evolve(
                registered_at=self.clock(),
                revision=previous.revision if previous is not None else 0,
            )

        try:
            try:
                _, agent = await update_agent(self.cache, agent_id, renew)
            except Contended:
                raise HivebusError(
                    ErrorCode.AGENT_EXISTS, f"agent {agent_id!r} is contended"
                ) from None
            assert agent is not None  # renew() never skips
            return agent
        except BaseException:
            if not self._is_active(agent_id):  # else the seat is the active registration's
                await self._state.release_seat(agent_id)
            raise

    def _is_active(self, agent_id: str) -> bool:
        agent = self.registry.get(agent_id)
        return agent is not None and agent.state is AgentState.ACTIVE

    def _check_not_active(self, agent_id: str) -> None:
        if self._is_active(agent_id):
            raise HivebusError(ErrorCode.AGENT_EXISTS, f"agent {agent_id!r} is already registered")

    def _max_agents_reached(self) -> HivebusError:
        return HivebusError(
            ErrorCode.MAX_AGENTS_REACHED,
            f"the orchestrator already has max_agents={self.config.max_agents} agents",
        )

    def _check_metadata(self, metadata: dict[str, Any]) -> None:
        size = len(orjson.dumps(metadata))
        if size > self.config.max_metadata_bytes:
            raise HivebusError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"metadata is {size} bytes as JSON; the limit is "
                f"max_metadata_bytes={self.config.max_metadata_bytes}",
            )

    def _check_can_register(self, agent_id: str) -> None:
        """Refuse early what this replica knows would fail; the seat decides for the bus."""
        self._check_not_active(agent_id)
        # Registrations of other agents on their way to the store count as well.
        arriving = len(self.cache.registering) - (agent_id in self.cache.registering)
        if self.registry.count_active() + arriving >= self.config.max_agents:
            raise self._max_agents_reached()

    def heartbeat(self, req: HeartbeatRequest) -> None:
        agent = self._live_agent(req.agent_id)
        self.cache.seen[agent.agent_id] = self.monotonic()
        if req.context_window_usage is not None:
            self.cache.context[agent.agent_id] = req.context_window_usage

    def _live_agent(self, agent_id: str) -> AgentRecord:
        agent = self.registry.get(agent_id)
        if agent is None or agent.state is not AgentState.ACTIVE:
            raise HivebusError(ErrorCode.UNKNOWN_AGENT, f"no registered agent {agent_id!r}")
        return agent

    def _view(self, agent: AgentRecord) -> AgentView:
        seen = self.cache.seen.get(agent.agent_id)
        last_seen = None if seen is None else self.clock() - (self.monotonic() - seen)
        return agent.view(last_seen, self.cache.context.get(agent.agent_id))

    async def deregister(self, req: DeregisterRequest) -> DeregisterReply:
        def known(agent: AgentRecord | None) -> AgentRecord:
            if agent is None:
                raise HivebusError(ErrorCode.UNKNOWN_AGENT, f"no registered agent {req.agent_id!r}")
            return agent

        try:
            agent = await delete_agent(self.cache, req.agent_id, known)
        except Contended:
            raise HivebusError(
                ErrorCode.UNAVAILABLE, f"agent {req.agent_id!r} is busy changing; try again"
            ) from None
        assert agent is not None  # known() never skips
        if agent.state is AgentState.ACTIVE:
            await self._state.release_seat(agent.agent_id)
        requeued = await self._take_back(agent, reason=f"agent {agent.agent_id} deregistered")
        if agent.state is AgentState.ACTIVE:
            log.info("agent deregistered", extra={"agent_id": agent.agent_id})
            self._emit(EventName.AGENT_DEREGISTERED, agent_id=agent.agent_id, requeued=requeued)
            if self._hooks.wants("hivebus_agent_removed"):
                self._hooks.notify(
                    "hivebus_agent_removed", agent=self._view(agent), reason="deregistered"
                )
        return DeregisterReply(requeued=requeued)

    async def mark_offline(self, agent_id: str) -> list[str]:
        """The agent went silent: stop offering to it and give its tasks to others.

        Several replicas may notice at once; the compare-and-set lets exactly one act.
        """
        agent = self.registry.get(agent_id)
        if agent is None or agent.state is not AgentState.ACTIVE:
            return []
        try:
            await self.cache.save_agent(
                agent.evolve(state=AgentState.OFFLINE, tasks=frozenset(), offline_at=self.clock())
            )
        except Conflict:
            await self.cache.refresh_agent(agent_id)
            return []
        await self._state.release_seat(agent_id)
        requeued = await self._take_back(agent, reason=f"agent {agent_id} went offline")
        log.warning("agent offline", extra={"agent_id": agent_id, "requeued": requeued})
        self._emit(EventName.AGENT_OFFLINE, agent_id=agent_id, requeued=requeued)
        if self._hooks.wants("hivebus_agent_removed"):
            self._hooks.notify("hivebus_agent_removed", agent=self._view(agent), reason="offline")
        return requeued

    async def _take_back(self, agent: AgentRecord, reason: str) -> list[str]:
        """Requeue what ``agent`` held; an offer still in flight settles on its own."""
        requeued = []
        for task_id in sorted(agent.tasks):
            task = self.cache.tasks.get(task_id)
            if task is None or task.agent_id != agent.agent_id:
                continue
            in_flight = task.status is TaskStatus.OFFERED and task_id in self._offering
            if not in_flight and await self._requeue(task_id, agent.agent_id, reason):
                requeued.append(task_id)
        return requeued

    async def _requeue(self, task_id: str, agent_id: str, reason: str) -> bool:
        """Take the task back from ``agent_id``: queued again, or failed past max_attempts.

        ``False`` when it is not the agent's any more, or when it stayed contended (then the
        orphan rule of the periodic pass requeues it later).
        """

        def back(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            if task is None or task.agent_id != agent_id or task.status not in _ACTIVE:
                return SKIP
            changes: dict[str, Any] = {"agent_id": None, "assigned_at": None, "offered_at": None}
            if task.attempts >= self.config.max_attempts:
                changes |= {
                    "status": TaskStatus.FAILED,
                    "success": False,
                    "error": f"gave up after {task.attempts} attempts ({reason})",
                    "finished_at": self.clock(),
                }
            else:
                changes["status"] = TaskStatus.QUEUED
            return task.evolve(**changes)

        try:
            _, saved = await update_task(self.cache, task_id, back)
        except Contended:
            return False
        if saved is None:
            return False
        if saved.status is TaskStatus.FAILED:
            self._finished_task(saved, None, None)  # held by nobody any more
        else:
            self._emit(
                EventName.TASK_REQUEUED,
                task_id=task_id,
                agent_id=agent_id,
                reason=reason,
                attempts=saved.attempts,
            )
            self._spawn(self._dispatch(task_id), name=f"hivebus-dispatch-{task_id}")
        return True

    # --- delegation ---------------------------------------------------------------------

    async def delegate(self, req: DelegateRequest, task_id: str) -> DelegateReply:
        """Create the task, offer it to capable agents, queue it if nobody accepts."""
        pending = self._delegating.get(task_id)
        if pending is not None:  # the same id, still being placed (stored or not yet)
            return await asyncio.shield(pending)
        existing = self.cache.tasks.get(task_id)
        if existing is not None:
            return _reply(existing)
        self._check_capacity(0)  # before any work: a flood is refused cheaply
        now = self.clock()
        execution_timeout_s = req.execution_timeout_s or self.config.default_execution_timeout_s
        task = TaskRecord(
            task_id=task_id,
            task_type=req.task_type,
            required_list=list(dict.fromkeys(req.required_capabilities)),
            priority=req.priority,
            payload=req.payload,
            metadata=dict(req.metadata),
            created_at=now,
            seq=time.time_ns(),
            queue_deadline=now + req.queue_timeout_s if req.queue_timeout_s else None,
            execution_timeout_s=execution_timeout_s,
        )
        future: asyncio.Future[DelegateReply] = asyncio.get_running_loop().create_future()
        self._delegating[task_id] = future
        try:
            reply = await self._schedule(task, queue=req.queue)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: a duplicate caller may never await it
            raise
        finally:
            self._delegating.pop(task_id, None)
            self.cache.end_admission(task_id)
        future.set_result(reply)
        return reply

    async def _schedule(self, task: TaskRecord, queue: bool) -> DelegateReply:
        if self._hooks.wants("hivebus_task_delegate"):
            task = _amended(task, await self._hooks.amend_task(task.view()))
        self._admit(task)
        self.stats.delegated(self.clock())
        placed = await self._place(task)
        if placed is not None:
            return _reply(placed)
        current = self.cache.tasks.get(task.task_id)
        if current is not None and current.status is not TaskStatus.OFFERED:
            return _reply(current)  # it exists already (another replica), or it was settled
        if not queue:
            if current is not None:
                self.cache.forget_task(task.task_id)
                await self._state.forget_task(task.task_id)
            raise HivebusError(
                ErrorCode.NO_AGENT_AVAILABLE,
                f"no free agent with capabilities {task.required_list} accepted the task",
            )
        base = current if current is not None else task
        try:
            queued = await self.cache.save_task(
                base.evolve(status=TaskStatus.QUEUED, agent_id=None, offered_at=None)
            )
        except Conflict:
            refreshed = await self.cache.refresh_task(task.task_id)
            if refreshed is None:
                raise HivebusError(
                    ErrorCode.INTERNAL_ERROR, "task vanished while queueing"
                ) from None
            return _reply(refreshed)
        log.debug("task queued", extra={"task_id": queued.task_id})
        self._emit(
            EventName.TASK_QUEUED,
            task_id=queued.task_id,
            task_type=queued.task_type,
            priority=queued.priority.name.lower(),
        )
        return _reply(queued)

    def _check_capacity(self, weight: int) -> None:
        if self.cache.live_count >= self.config.max_concurrent_tasks:
            raise HivebusError(
                ErrorCode.OVER_CAPACITY,
                f"max_concurrent_tasks={self.config.max_concurrent_tasks} tasks are active "
                "or queued",
            )
        budget = self.config.max_live_task_bytes
        if weight and self.cache.committed_weight + weight > budget:
            raise HivebusError(
                ErrorCode.OVER_CAPACITY,
                f"the tasks active or queued weigh {self.cache.committed_weight} bytes; this one "
                f"({weight} bytes) would pass max_live_task_bytes={budget}",
            )

    def _admit(self, task: TaskRecord) -> None:
        """Refuse, before anything is stored, a task that could not be stored or finished."""
        self._check_metadata(task.metadata)
        limit = self.max_record_bytes - FAILURE_ROOM
        if task.size > limit:
            raise HivebusError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"the task's record would be {task.size} bytes (payload, metadata and "
                f"capabilities); at most {limit} fit in a NATS message with room for its "
                "outcome: pass large payloads by reference",
            )
        self._check_capacity(task.weight)
        self.cache.admit(task.task_id, task.weight)

    async def _place(self, task: TaskRecord, first: str | None = None) -> TaskRecord | None:
        """Offer ``task`` to up to ``offer_candidates`` agents until one accepts.

        ``task`` is the record as last known (revision 0 when not yet stored). ``first`` is an
        agent already reserved for it, with the task stored as offered to it. Returns the
        settled record when the task needs no more placing (accepted, or settled elsewhere),
        ``None`` when nobody took it.
        """
        budget = self.config.offer_candidates
        tried: set[str] = set()
        if first is not None:
            tried.add(first)
            budget -= 1
            settled = await self._offer(task.task_id, first)
            if settled is not None:
                return settled
        while budget > 0:
            candidates = self.registry.candidates(
                task.required, budget, frozenset(tried), self._claimed
            )
            if not candidates:
                return None
            if len(candidates) > 1 and self._hooks.wants("hivebus_select_agent"):
                candidates = await self._plugin_order(task, candidates)
            for candidate in candidates:
                tried.add(candidate.agent_id)
                budget -= 1
                if not await self._reserve(candidate.agent_id, task.task_id):
                    continue
                current = self.cache.tasks.get(task.task_id, task)
                if current.revision and current.status is not TaskStatus.OFFERED:
                    await self._unreserve(candidate.agent_id, task.task_id)
                    return current  # settled while we were reserving
                try:
                    await self.cache.save_task(
                        current.evolve(
                            status=TaskStatus.OFFERED,
                            agent_id=candidate.agent_id,
                            offered_at=self.clock(),
                        )
                    )
                except Conflict:
                    await self._unreserve(candidate.agent_id, task.task_id)
                    return await self.cache.refresh_task(task.task_id)
                settled = await self._offer(task.task_id, candidate.agent_id)
                if settled is not None:
                    return settled
        return None

    async def _plugin_order(
        self, task: TaskRecord, candidates: list[AgentRecord]
    ) -> list[AgentRecord]:
        chosen = await self._hooks.select_agent(task.view(), [self._view(a) for a in candidates])
        if chosen is None:
            return candidates
        picked = [a for a in candidates if a.agent_id == chosen]
        if not picked:
            log.warning(
                "plugin selected an agent that is not a candidate",
                extra={"task_id": task.task_id, "agent_id": chosen},
            )
            return candidates
        return picked + [a for a in candidates if a.agent_id != chosen]

    async def _reserve(self, agent_id: str, task_id: str) -> bool:
        """Take one of the agent's slots for ``task_id`` (stored before the offer is sent).

        While the write is in flight the slot counts as claimed here, so a concurrent
        delegation in this process picks another agent instead of losing the race for it
        (the compare-and-set still decides between replicas).
        """
        claimed = self._claimed

        def take(agent: AgentRecord | None) -> AgentRecord | Literal[Skip.SKIP]:
            if agent is None or not agent.has_free_slot:
                return SKIP
            # the slots other coroutines here are taking (this one's claim is counted too)
            if len(agent.tasks) + claimed[agent_id] - 1 >= agent.max_tasks:
                return SKIP
            return agent.evolve(tasks=agent.tasks | {task_id})

        claimed[agent_id] = claimed.get(agent_id, 0) + 1
        try:
            _, taken = await update_agent(self.cache, agent_id, take)
        except Contended:
            return False  # passed over: the next candidate is tried
        finally:
            self._unclaim(agent_id)
        return taken is not None

    def _unclaim(self, agent_id: str) -> None:
        left = self._claimed[agent_id] - 1
        if left:
            self._claimed[agent_id] = left
        else:
            del self._claimed[agent_id]

    async def _unreserve(self, agent_id: str | None, task_id: str) -> AgentRecord | None:
        """Give the slot back; returns the agent when it now has room for more work."""
        if not agent_id:
            return None

        def give_back(agent: AgentRecord | None) -> AgentRecord | Literal[Skip.SKIP]:
            if agent is None or task_id not in agent.tasks:
                return SKIP
            return agent.evolve(tasks=agent.tasks - {task_id})

        try:
            _, saved = await update_agent(self.cache, agent_id, give_back)
        except Contended:
            return None  # the slot stays taken: the phantom-slot rule frees it later
        return saved if saved is not None and saved.has_free_slot else None

    async def _ask(self, task_id: str, agent_id: str) -> OfferOutcome:
        """One offer round trip for the stored task."""
        task = self.cache.tasks[task_id]
        offer = Offer(
            task_id=task.task_id,
            task_type=task.task_type,
            required_capabilities=task.required_list,
            priority=task.priority,
            payload=task.payload,
            metadata=task.metadata,
            attempt=task.attempts + 1,
        )
        self._offering.add(task_id)
        try:
            return await self._offers.offer(agent_id, offer)
        finally:
            self._offering.discard(task_id)

    async def _accept(
        self, task_id: str, agent_id: str, outcome: OfferOutcome
    ) -> tuple[bool, TaskRecord | None]:
        """Record an offer's outcome. ``(True, record)``: the task needs no more placing."""

        def assign(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            if not _offered_to(task, agent_id):
                return SKIP  # settled while we waited: cancelled, done, taken back
            agent = self.registry.get(agent_id)
            if not (outcome.accepted and agent is not None and agent.state is AgentState.ACTIVE):
                return SKIP
            assert task is not None  # offered to the agent
            return _assigned_copy(task, self.clock())

        try:
            seen, assigned = await update_task(self.cache, task_id, assign)
        except Contended:
            # Left offered; if the agent did accept, the stale-offer rule asks it again.
            return True, self.cache.tasks.get(task_id)
        if assigned is not None:
            return True, self._assigned(assigned)
        return not _offered_to(seen, agent_id), seen

    async def _offer(self, task_id: str, agent_id: str) -> TaskRecord | None:
        """Send the reserved, stored offer and settle it. ``None``: not accepted."""
        outcome = await self._ask(task_id, agent_id)
        done, task = await self._accept(task_id, agent_id, outcome)
        if done:
            return task
        self._note_refusal(task_id)
        if outcome.result is not OfferResult.NO_RESPONDERS:
            log.info(
                "offer not accepted",
                extra={
                    "task_id": task_id,
                    "agent_id": agent_id,
                    "outcome": outcome.result.value,
                    "reason": outcome.reason,
                },
            )
        await self._unreserve(agent_id, task_id)
        return None

    def _note_refusal(self, task_id: str) -> None:
        """An offer of ``task_id`` was not accepted: it waits before it is offered again.

        Without this, a task every agent refuses would be taken from the head of the queue
        and offered again at every pass, and the tasks behind it would never be offered.
        """
        count = self._refusals.get(task_id, (0, 0.0))[0] + 1
        delay = min(
            self.config.refusal_backoff_s * 2 ** min(count - 1, 16),
            self.config.refusal_backoff_max_s,
        )
        self._refusals[task_id] = (count, self.monotonic() + delay)

    def _ready(self, task_id: str) -> bool:
        """May ``task_id`` be offered now (it is not backing off after a refusal)?"""
        refused = self._refusals.get(task_id)
        return refused is None or self.monotonic() >= refused[1]

    def _assigned(self, task: TaskRecord) -> TaskRecord:
        self._refusals.pop(task.task_id, None)
        log.debug("task assigned", extra={"task_id": task.task_id, "agent_id": task.agent_id})
        self._emit(
            EventName.TASK_ASSIGNED,
            task_id=task.task_id,
            agent_id=task.agent_id,
            attempt=task.attempts,
        )
        if self._hooks.wants("hivebus_task_assigned"):
            agent = self.registry.get(task.agent_id or "")
            if agent is not None:
                self._hooks.notify(
                    "hivebus_task_assigned", task=task.view(), agent=self._view(agent)
                )
        return task

    # --- the queue ------------------------------------------------------------------------

    async def _feed(self, agent_id: str) -> None:
        """Give a new or freed agent the best waiting tasks it can serve."""
        while len(self.queue):
            agent = self.registry.get(agent_id)
            if agent is None or not agent.has_free_slot:
                return
            task = self.queue.pop_for(agent.capability_set, self._ready if self._refusals else None)
            if task is None:
                return
            offered = False
            try:
                offered = await self._offer_from_queue(task.task_id, agent_id)
            finally:
                # Whatever stopped it (a refusal, a lost race, the store failing over), a task
                # taken out of line and not offered goes back, keeping its place.
                if not offered:
                    self._back_in_line(task.task_id)
            if not offered:
                return  # the next periodic pass tries again

    async def _offer_from_queue(self, task_id: str, agent_id: str) -> bool:
        """Reserve the agent and store the task as offered to it; the offer goes out after."""
        if not await self._reserve(agent_id, task_id):
            return False
        current = self.cache.tasks.get(task_id)
        if current is None or current.status is not TaskStatus.QUEUED:
            await self._unreserve(agent_id, task_id)
            return False
        try:
            offered = current.evolve(
                status=TaskStatus.OFFERED, agent_id=agent_id, offered_at=self.clock()
            )
            await self.cache.save_task(offered)
        except Conflict:  # another replica is dispatching it
            await self._unreserve(agent_id, task_id)
            await self.cache.refresh_task(task_id)
            return False
        self._spawn(self._settle(task_id, agent_id), name=f"hivebus-offer-{task_id}")
        return True

    async def _settle(self, task_id: str, agent_id: str) -> None:
        """Finish placing a task already stored as offered to ``agent_id``."""
        task = self.cache.tasks.get(task_id)
        if task is None:
            return
        if await self._place(task, first=agent_id) is None:
            await self._requeue_unplaced(task_id)
            # The agent that refused may have room for the next task in line (this one now
            # waits out its back-off): offer it now rather than at the next pass.
            if len(self.queue):
                self._spawn(self._feed(agent_id), name=f"hivebus-feed-{agent_id}")

    async def _requeue_unplaced(self, task_id: str) -> None:
        """Nobody accepted a task from the queue: it goes back in line, keeping its place."""

        def back_in_line(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            if task is None or task.status is not TaskStatus.OFFERED:
                return SKIP
            return task.evolve(status=TaskStatus.QUEUED, agent_id=None, offered_at=None)

        # Contended: left offered; the stale-offer rule asks again, then puts it back.
        with contextlib.suppress(Contended):
            await update_task(self.cache, task_id, back_in_line)

    def _back_in_line(self, task_id: str) -> None:
        task = self.cache.tasks.get(task_id)
        if task is not None and task.status is TaskStatus.QUEUED:
            self.queue.push(task)

    async def _dispatch(self, task_id: str) -> None:
        """A requeued task looks for a free agent right away rather than at the next tick."""
        task = self.cache.tasks.get(task_id)
        if task is None or task.status is not TaskStatus.QUEUED:
            return
        candidates = self.registry.candidates(
            task.required, self.config.offer_candidates, claimed=self._claimed
        )
        for agent in candidates:
            await self._feed(agent.agent_id)
            current = self.cache.tasks.get(task_id)
            if current is None or current.status is not TaskStatus.QUEUED:
                return

    # --- completion and cancellation --------------------------------------------------

    async def complete(self, req: CompleteRequest) -> TaskView:
        def finish(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            task = self._known(task, req.task_id)
            if task.status.is_final:
                same = (
                    task.status in (TaskStatus.COMPLETED, TaskStatus.FAILED)
                    and task.agent_id == req.agent_id
                    and task.success == req.success
                )
                if same:
                    return SKIP  # a retried completion: answered, never counted twice
                raise HivebusError(
                    ErrorCode.INVALID_STATE,
                    f"task {task.task_id!r} is already {task.status.value}",
                )
            if task.agent_id != req.agent_id or task.status not in _ACTIVE:
                raise HivebusError(
                    ErrorCode.NOT_TASK_OWNER,
                    f"task {task.task_id!r} is not assigned to agent {req.agent_id!r}",
                )
            now = self.clock()
            if task.status is TaskStatus.OFFERED:
                # The agent accepted and finished before its acceptance reached us: record
                # the assignment too, so observers see the same life as for a slower agent.
                task = _assigned_copy(task, now)
            finished = task.evolve(
                status=TaskStatus.COMPLETED if req.success else TaskStatus.FAILED,
                success=req.success,
                result=req.result,
                error=None if req.success else (req.error or "failed"),
                finished_at=now,
            )
            if finished.size > self.max_record_bytes:
                raise HivebusError(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"with this result the task's record would be {finished.size} bytes; at "
                    f"most {self.max_record_bytes} fit in a NATS message: report a smaller "
                    "result (or a reference to it), or a failure",
                )
            return finished

        try:
            seen, finished = await update_task(self.cache, req.task_id, finish)
        except Contended:
            raise HivebusError(
                ErrorCode.INTERNAL_ERROR, f"task {req.task_id!r} is contended"
            ) from None
        assert seen is not None  # finish() raises on a missing task
        if finished is None:
            # Answered again as it was; if the first attempt died between its two writes,
            # the slot is given back now.
            await self._free(req.agent_id, req.task_id)
            return seen.view()
        if seen.status is TaskStatus.OFFERED:
            self._assigned(finished)
        self._finished_task(finished, req.agent_id, finished.assigned_at)
        await self._free(req.agent_id, req.task_id)
        return finished.view()

    async def _free(self, agent_id: str | None, task_id: str) -> None:
        freed = await self._unreserve(agent_id, task_id)
        if freed is not None and len(self.queue):
            self._spawn(self._feed(freed.agent_id), name=f"hivebus-feed-{freed.agent_id}")

    def _finished_task(self, task: TaskRecord, agent_id: str | None, since: float | None) -> None:
        success = task.status is TaskStatus.COMPLETED
        duration_ms = None
        if since is not None and task.finished_at is not None:
            duration_ms = (task.finished_at - since) * 1000
        self.stats.finished(success, duration_ms)
        # A success is on events.> already; a failure is worth a line at INFO too.
        log.log(
            logging.DEBUG if success else logging.INFO,
            "task completed" if success else "task failed",
            extra={"task_id": task.task_id, "agent_id": agent_id, "error": task.error},
        )
        fields: dict[str, Any] = {"task_id": task.task_id, "agent_id": agent_id}
        if duration_ms is not None:
            fields["duration_ms"] = round(duration_ms, 3)
        if not success:
            fields["error"] = task.error
        self._emit(EventName.TASK_COMPLETED if success else EventName.TASK_FAILED, **fields)
        hook = "hivebus_task_completed" if success else "hivebus_task_failed"
        if self._hooks.wants(hook):
            self._hooks.notify(hook, task=task.view())

    def _task(self, task_id: str) -> TaskRecord:
        return self._known(self.cache.tasks.get(task_id), task_id)

    @staticmethod
    def _known(task: TaskRecord | None, task_id: str) -> TaskRecord:
        if task is None:
            raise HivebusError(ErrorCode.UNKNOWN_TASK, f"no task {task_id!r}")
        return task

    def get_task(self, task_id: str) -> TaskView:
        return self._task(task_id).view()

    async def cancel(self, task_id: str) -> TaskView:
        return (await self._end(task_id, TaskStatus.CANCELLED, EventName.TASK_CANCELLED)).view()

    async def _end(
        self,
        task_id: str,
        status: TaskStatus,
        event: EventName,
        error: str | None = None,
        only_from: TaskStatus | None = None,
    ) -> TaskRecord:
        """Cancel or expire a task that is not finished; idempotent for the same end.

        ``only_from``: end it only while it is still in that status (expiry applies to
        queued tasks only, even when a retry after a lost race finds it offered).
        """

        def end(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            task = self._known(task, task_id)
            if task.status is status or (only_from is not None and task.status is not only_from):
                return SKIP
            if task.status.is_final:
                raise HivebusError(
                    ErrorCode.INVALID_STATE, f"task {task_id!r} is already {task.status.value}"
                )
            return task.evolve(status=status, finished_at=self.clock(), error=error)

        try:
            task, ended = await update_task(self.cache, task_id, end)
        except Contended:
            raise HivebusError(ErrorCode.INTERNAL_ERROR, f"task {task_id!r} is contended") from None
        assert task is not None  # end() raises on a missing task
        if ended is None:
            return task
        log.log(
            logging.DEBUG if status is TaskStatus.CANCELLED else logging.INFO,
            f"task {status.value}",
            extra={"task_id": task_id, "agent_id": task.agent_id},
        )
        self._emit(event, task_id=task_id, agent_id=task.agent_id)
        if task.agent_id is not None and task.status in _ACTIVE:
            await self._stop_agent_work(task.agent_id, task_id)
        return ended

    # --- the clock: liveness, deadlines, recovery -------------------------------------

    async def _tick_forever(self) -> None:
        interval = max(self.config.heartbeat_interval_s / 2, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except Exception:
                log.exception("periodic check failed")

    async def tick(self) -> None:
        """Everything that happens because time passed, in one pass.

        Each step stands alone: while the store fails over, one failing step must not keep
        the others from running.
        """
        steps = (
            self.reap,
            self._expire_and_recover,
            self._release_phantoms,
            self.sweep,
            self.prune_offline,
            self._release_stray_seats,
        )
        for step in steps:
            try:
                await step()
            except StateUnavailable as exc:
                log.warning(
                    "periodic step postponed", extra={"step": step.__name__, "error": str(exc)}
                )

    def bus_lost(self) -> None:
        """The core lost NATS: silence from agents means nothing until it is back."""
        self._bus_up = False

    def bus_restored(self) -> None:
        """Back on NATS: every agent gets a full window to be heard again."""
        now = self.monotonic()
        for agent_id in self.cache.seen:
            self.cache.seen[agent_id] = now
        self._bus_up = True

    async def reap(self) -> list[str]:
        """Mark agents silent for ``offline_after_missed`` heartbeat intervals offline."""
        if not self._bus_up:
            return []
        limit = self.config.heartbeat_interval_s * self.config.offline_after_missed
        now = self.monotonic()
        gone = [
            agent.agent_id
            for agent in self.registry
            if agent.state is AgentState.ACTIVE
            and now - self.cache.seen.setdefault(agent.agent_id, now) > limit
        ]
        for agent_id in gone:
            await self.mark_offline(agent_id)
        return gone

    async def prune_offline(self) -> list[str]:
        """Delete the records of agents offline longer than ``agent_retention_s``, and the
        oldest ones past ``max_agents`` of them, so silent agents cannot pile up forever."""
        offline = sorted(
            (a for a in self.registry if a.state is AgentState.OFFLINE),
            key=lambda a: a.offline_at or a.registered_at,
        )
        excess = len(offline) - self.config.max_agents
        cutoff = self.clock() - self.config.agent_retention_s
        pruned = []
        for index, agent in enumerate(offline):
            if index >= excess and (agent.offline_at or agent.registered_at) > cutoff:
                break
            try:
                await self.cache.delete_agent(agent)
            except Conflict:  # it changed: looked at again at the next pass
                await self.cache.refresh_agent(agent.agent_id)
                continue
            pruned.append(agent.agent_id)
        if pruned:
            log.info("offline agents forgotten", extra={"count": len(pruned)})
        return pruned

    async def _release_stray_seats(self) -> None:
        """Give back seats no active agent holds: a crash between taking a seat and storing
        the registration (or between going offline and giving the seat back) leaves one."""
        grace = self.config.heartbeat_interval_s * 2
        now = self.monotonic()
        if now - self._seats_checked < grace:
            return
        self._seats_checked = now
        stray = {
            agent_id: self._stray_seats.get(agent_id, now)
            for agent_id in await self._state.seat_holders()
            if not self._is_active(agent_id) and agent_id not in self.cache.registering
        }
        for agent_id, since in stray.items():
            if now - since >= grace:
                log.warning("releasing a stray seat", extra={"agent_id": agent_id})
                await self._state.release_seat(agent_id)
        self._stray_seats = {a: t for a, t in stray.items() if now - t < grace}

    async def _expire_and_recover(self) -> None:
        """Deadlines, and tasks a crash left with nobody to finish them.

        Each task is handled on its own: one that cannot be handled now (it changed under
        us, the store is failing over) does not hold up the others.
        """
        for task_id in list(self.cache.live):
            try:
                await self._check_live_task(task_id)
            except (HivebusError, StateUnavailable, Contended) as exc:
                log.info("task check postponed", extra={"task_id": task_id, "error": str(exc)})
        for task_id in [t for t in self._orphans if t not in self.cache.live]:
            del self._orphans[task_id]
        for task_id in [t for t in self._refusals if t not in self.cache.live]:
            del self._refusals[task_id]

    async def _check_live_task(self, task_id: str) -> None:
        task = self.cache.tasks.get(task_id)
        if task is None:
            return
        now = self.clock()
        if task.status is TaskStatus.QUEUED:
            if task.queue_deadline is not None and now > task.queue_deadline:
                await self._end(
                    task_id,
                    TaskStatus.EXPIRED,
                    EventName.TASK_EXPIRED,
                    "queue timeout",
                    only_from=TaskStatus.QUEUED,
                )
            return
        if task_id in self._offering or task.agent_id is None:
            return
        agent = self.registry.get(task.agent_id)
        if agent is None or agent.state is not AgentState.ACTIVE:
            # Its agent left, but whoever stored that died before giving the task back. Or
            # another replica's watch is a moment ahead of ours: so only after a grace.
            first_seen = self._orphans.setdefault(task_id, self.monotonic())
            if self.monotonic() - first_seen > self.config.heartbeat_interval_s * 2:
                await self._requeue(task_id, task.agent_id, f"agent {task.agent_id} is gone")
            return
        self._orphans.pop(task_id, None)
        if task.status is TaskStatus.ASSIGNED:
            limit = task.execution_timeout_s
            if limit is not None and task.assigned_at and now > task.assigned_at + limit:
                await self._execution_timeout(task)
        elif task.offered_at is not None and now - task.offered_at > self._stale_offer_s:
            await self._recover_offer(task)

    @property
    def _stale_offer_s(self) -> float:
        """An offer older than this has nobody waiting for its answer any more."""
        return self.config.offer_timeout_s * 2 + self.config.heartbeat_interval_s

    async def _execution_timeout(self, task: TaskRecord) -> None:
        agent_id = task.agent_id
        reason = f"execution timeout of {task.execution_timeout_s}s"
        if self.config.on_execution_timeout == "fail":

            def fail(current: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
                if current is None or current.status is not TaskStatus.ASSIGNED:
                    return SKIP
                return current.evolve(
                    status=TaskStatus.FAILED, success=False, error=reason, finished_at=self.clock()
                )

            # Contended propagates: the periodic pass postpones the check to its next round.
            _, failed = await update_task(self.cache, task.task_id, fail)
            if failed is not None:
                self._finished_task(failed, agent_id, failed.assigned_at)
                await self._stop_agent_work(agent_id, task.task_id)
        elif agent_id is not None and await self._requeue(task.task_id, agent_id, reason):
            await self._stop_agent_work(agent_id, task.task_id)

    async def _stop_agent_work(self, agent_id: str | None, task_id: str) -> None:
        """After the store says the task left the agent: tell the agent, free its slot."""
        if agent_id is not None:
            await self._offers.withdraw(agent_id, task_id)
        await self._free(agent_id, task_id)

    async def _recover_offer(self, task: TaskRecord) -> None:
        """An offer whose sender died (a core crashed mid-offer): ask the same agent again.

        The same agent first, because it may have accepted and be working on it already;
        the compare-and-set on ``offered_at`` makes one replica the one that asks.
        """
        try:
            claimed = await self.cache.save_task(task.evolve(offered_at=self.clock()))
        except Conflict:
            await self.cache.refresh_task(task.task_id)
            return
        agent_id = claimed.agent_id
        log.info("recovering an offer", extra={"task_id": task.task_id, "agent_id": agent_id})
        agent = self.registry.get(agent_id) if agent_id else None
        if agent_id is None or agent is None or agent.state is not AgentState.ACTIVE:
            await self._requeue_unplaced(task.task_id)
            return
        self._spawn(self._reoffer(task.task_id, agent_id), name=f"hivebus-reoffer-{task.task_id}")

    async def _reoffer(self, task_id: str, agent_id: str) -> None:
        """Ask only the agent it was offered to: it may be running it already.

        Silence (no responders, a timeout) keeps the offer standing for the next round: an
        agent that is really gone is caught by the liveness rule, which requeues the task.
        Only an explicit refusal sends the task back to the queue now.
        """
        outcome = await self._ask(task_id, agent_id)
        done, _ = await self._accept(task_id, agent_id, outcome)
        if done or outcome.result in (OfferResult.TIMEOUT, OfferResult.NO_RESPONDERS):
            return
        await self._unreserve(agent_id, task_id)
        await self._requeue_unplaced(task_id)

    async def _release_phantoms(self) -> None:
        """Free slots held for tasks that no longer need them.

        A slot is reserved before the task is stored as offered, and released after the task
        is finished: a crash (or a failover) between the two writes leaves a reservation
        behind. One seen twice, a grace period apart, is released.
        """
        now = self.monotonic()
        grace = self.config.heartbeat_interval_s * 2
        suspects: dict[tuple[str, str], float] = {}
        for agent in list(self.registry):
            for task_id in agent.tasks:
                task = self.cache.tasks.get(task_id)
                if task is not None and task.agent_id == agent.agent_id and task.status in _ACTIVE:
                    continue
                key = (agent.agent_id, task_id)
                suspects[key] = self._phantoms.get(key, now)
                if now - suspects[key] > grace:
                    log.warning(
                        "releasing a stale slot", extra={"agent_id": key[0], "task_id": task_id}
                    )
                    await self._free(agent.agent_id, task_id)
        self._phantoms = suspects

    async def sweep(self) -> None:
        """Offer waiting work to every agent with a free slot.

        Tasks are normally handed out the moment an agent registers or frees a slot; this
        periodic pass catches what an earlier refusal or a replica's crash left waiting.
        """
        for agent in self.registry.free_agents():
            if not len(self.queue):
                return
            await self._feed(agent.agent_id)

    # --- views ------------------------------------------------------------------------

    def agents(self, after: str | None = None) -> Iterator[AgentView]:
        """Agents in order of their ids, from the first one after ``after``."""
        ids = sorted(a.agent_id for a in self.registry if after is None or a.agent_id > after)
        for agent_id in ids:
            agent = self.registry.get(agent_id)
            if agent is not None:
                yield self._view(agent)

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
        extensions = await self._hooks.status_contributions(self)
        if extensions:
            status["extensions"] = extensions
        return status


def _reply(task: TaskRecord) -> DelegateReply:
    return DelegateReply(task_id=task.task_id, status=task.status, agent_id=task.agent_id)


def _assigned_copy(task: TaskRecord, now: float) -> TaskRecord:
    return task.evolve(status=TaskStatus.ASSIGNED, attempts=task.attempts + 1, assigned_at=now)


def _amended(task: TaskRecord, changes: dict[str, Any]) -> TaskRecord:
    updates: dict[str, Any] = {}
    if "priority" in changes:
        updates["priority"] = TaskPriority.parse(changes["priority"])
    if "required_capabilities" in changes:
        updates["required_list"] = [str(c) for c in dict.fromkeys(changes["required_capabilities"])]
    if "metadata" in changes:
        updates["metadata"] = {**task.metadata, **dict(changes["metadata"])}
    if "payload" in changes:
        updates["payload"] = changes["payload"]
    return task.evolve(**updates) if updates else task


def _offered_to(task: TaskRecord | None, agent_id: str) -> bool:
    return task is not None and task.status is TaskStatus.OFFERED and task.agent_id == agent_id
