"""The orchestrator: registry, queue, selection and the task lifecycle.

Every state change happens synchronously between awaits, so the single event loop is the
lock: a slot is reserved for an offer *before* the offer is awaited, and everything read
before an await is re-checked after it. The only awaits on the request path are the offer
round trip and the veto/amend/select hooks, each bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

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
from .ports import EventPort, HookPort, OfferPort, OfferResult
from .queue import PendingQueue
from .registry import AgentRecord, AgentRegistry
from .stats import Stats
from .tasks import TaskRecord

if TYPE_CHECKING:
    from ..config import HivebusConfig

__all__ = ["HealthCheck", "Orchestrator"]

log = logging.getLogger("hivebus.orchestrator")

HealthCheck = Callable[[], tuple[HealthStatus, str] | None]
"""Returns ``None`` when fine, or a status and a human-readable issue."""

_AMENDABLE = frozenset({"priority", "required_capabilities", "metadata", "payload"})


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError):  # not Linux: report nothing rather than guess
        return 0.0


class Orchestrator:
    """The domain core. Wire-agnostic: it speaks to the world only through its ports."""

    def __init__(
        self,
        config: HivebusConfig,
        offers: OfferPort,
        events: EventPort,
        hooks: HookPort,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._offers = offers
        self._events = events
        self._hooks = hooks
        self._clock = clock
        self._monotonic = monotonic
        self.registry = AgentRegistry()
        self.queue = PendingQueue()
        self.stats = Stats()
        self._tasks: dict[str, TaskRecord] = {}
        self._live: set[str] = set()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._delegating: dict[str, asyncio.Future[DelegateReply]] = {}
        self._seen: dict[str, float] = {}  # agent id -> monotonic time of last sign of life
        self._seq = 0
        self._background: set[asyncio.Task[Any]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._health_checks: list[HealthCheck] = []
        self.started_at = clock()
        self._started_mono = monotonic()

    # --- lifecycle --------------------------------------------------------------------

    @property
    def orchestrator_id(self) -> str:
        return self.config.orchestrator_id

    def start(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_forever(), name="hivebus-reaper")

    async def stop(self) -> None:
        tasks = [t for t in (self._reaper, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reaper = None
        self._background.clear()

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
        event = Event(event=name, timestamp=self._clock(), **fields)
        self._events.publish(event)
        if self._hooks.wants("hivebus_event"):
            self._hooks.notify("hivebus_event", event=event)

    # --- agents -----------------------------------------------------------------------

    async def register(self, req: RegisterRequest) -> AgentRecord:
        self._check_can_register(req.agent_id)
        now = self._clock()
        caps = tuple(dict.fromkeys(req.capabilities))
        agent = AgentRecord(
            agent_id=req.agent_id,
            role=req.role,
            capabilities=frozenset(caps),
            declared_capabilities=caps,
            max_tasks=req.max_tasks,
            metadata=dict(req.metadata),
            registered_at=now,
            last_seen=now,
        )
        if self._hooks.wants("hivebus_agent_register"):
            await self._hooks.check_agent(agent.view())
            self._check_can_register(req.agent_id)  # the world may have moved during the hook
        self.registry.add(agent)
        self._seen[agent.agent_id] = self._monotonic()
        log.info("agent registered", extra={"agent_id": agent.agent_id, "role": agent.role.value})
        self._emit(
            EventName.AGENT_REGISTERED,
            agent_id=agent.agent_id,
            role=agent.role.value,
            capabilities=list(caps),
            max_tasks=agent.max_tasks,
        )
        if self._hooks.wants("hivebus_agent_registered"):
            self._hooks.notify("hivebus_agent_registered", agent=agent.view())
        self._feed(agent)
        return agent

    def _check_can_register(self, agent_id: str) -> None:
        existing = self.registry.get(agent_id)
        if existing is not None and existing.state is AgentState.ACTIVE:
            raise HivebusError(ErrorCode.AGENT_EXISTS, f"agent {agent_id!r} is already registered")
        if self.registry.count_active() >= self.config.max_agents:
            raise HivebusError(
                ErrorCode.MAX_AGENTS_REACHED,
                f"the orchestrator already has max_agents={self.config.max_agents} agents",
            )

    def heartbeat(self, req: HeartbeatRequest) -> None:
        agent = self._live_agent(req.agent_id)
        agent.last_seen = self._clock()
        self._seen[agent.agent_id] = self._monotonic()
        if req.context_window_usage is not None:
            agent.context_window_usage = req.context_window_usage

    def _live_agent(self, agent_id: str) -> AgentRecord:
        agent = self.registry.get(agent_id)
        if agent is None or agent.state is not AgentState.ACTIVE:
            raise HivebusError(ErrorCode.UNKNOWN_AGENT, f"no registered agent {agent_id!r}")
        return agent

    def deregister(self, req: DeregisterRequest) -> DeregisterReply:
        agent = self.registry.get(req.agent_id)
        if agent is None:
            raise HivebusError(ErrorCode.UNKNOWN_AGENT, f"no registered agent {req.agent_id!r}")
        was_active = agent.state is AgentState.ACTIVE
        requeued = self._take_back_tasks(agent)
        self.registry.remove(agent.agent_id)
        self._seen.pop(agent.agent_id, None)
        if was_active:
            log.info("agent deregistered", extra={"agent_id": agent.agent_id})
            self._emit(EventName.AGENT_DEREGISTERED, agent_id=agent.agent_id, requeued=requeued)
            if self._hooks.wants("hivebus_agent_removed"):
                self._hooks.notify(
                    "hivebus_agent_removed", agent=agent.view(), reason="deregistered"
                )
        return DeregisterReply(requeued=requeued)

    def mark_offline(self, agent: AgentRecord) -> list[str]:
        """The agent went silent: stop offering to it and give its tasks to others."""
        self.registry.mark_offline(agent)
        requeued = self._take_back_tasks(agent)
        log.warning("agent offline", extra={"agent_id": agent.agent_id, "requeued": requeued})
        self._emit(EventName.AGENT_OFFLINE, agent_id=agent.agent_id, requeued=requeued)
        if self._hooks.wants("hivebus_agent_removed"):
            self._hooks.notify("hivebus_agent_removed", agent=agent.view(), reason="offline")
        return requeued

    def _take_back_tasks(self, agent: AgentRecord) -> list[str]:
        requeued: list[str] = []
        for task_id in list(agent.tasks):
            agent.tasks.discard(task_id)
            task = self._tasks.get(task_id)
            if task is None or task.agent_id != agent.agent_id:
                continue
            if task.status is TaskStatus.ASSIGNED:
                self._requeue(task, reason=f"agent {agent.agent_id} left")
                requeued.append(task_id)
            # An OFFERED task is settled by its pending offer, which re-checks the agent.
        return requeued

    def _requeue(self, task: TaskRecord, reason: str) -> None:
        task.agent_id = None
        task.assigned_at = None
        if task.attempts >= self.config.max_attempts:
            self._finish(task, False, None, f"gave up after {task.attempts} attempts ({reason})")
            return
        task.status = TaskStatus.QUEUED
        self.queue.push(task)
        self._emit(EventName.TASK_REQUEUED, task_id=task.task_id, attempts=task.attempts)
        self._spawn(self._redispatch(task), name=f"hivebus-redispatch-{task.task_id}")

    async def _redispatch(self, task: TaskRecord) -> None:
        if task.task_id not in self.queue:
            return
        self.queue.discard(task.task_id)
        if not await self._place(task):
            self.queue.push(task)

    async def reap(self) -> list[str]:
        """Mark agents silent for ``offline_after_missed`` heartbeat intervals offline."""
        limit = self.config.heartbeat_interval_s * self.config.offline_after_missed
        now = self._monotonic()
        gone = [
            agent
            for agent in self.registry
            if agent.state is AgentState.ACTIVE
            and now - self._seen.get(agent.agent_id, now) > limit
        ]
        for agent in gone:
            self.mark_offline(agent)
        return [agent.agent_id for agent in gone]

    async def _reap_forever(self) -> None:
        interval = max(self.config.heartbeat_interval_s / 2, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reap()
                self.sweep()
            except Exception:
                log.exception("liveness check failed")

    def sweep(self) -> None:
        """Offer waiting work to every agent with a free slot.

        Tasks are normally handed out the moment an agent registers or frees a slot; this
        periodic pass catches what an earlier refusal left waiting beside a free agent.
        """
        if not len(self.queue):
            return
        for agent in self.registry.free_agents():
            if not len(self.queue):
                return
            self._feed(agent)

    # --- tasks ------------------------------------------------------------------------

    async def delegate(self, req: DelegateRequest, task_id: str) -> DelegateReply:
        """Create the task, offer it to capable agents, queue it if nobody accepts."""
        existing = self._tasks.get(task_id)
        if existing is not None:
            pending = self._delegating.get(task_id)
            if pending is not None:
                return await asyncio.shield(pending)
            return self._reply_for(existing)
        if len(self._live) >= self.config.max_concurrent_tasks:
            raise HivebusError(
                ErrorCode.OVER_CAPACITY,
                f"max_concurrent_tasks={self.config.max_concurrent_tasks} tasks are active "
                "or queued",
            )
        self._seq += 1
        caps = list(dict.fromkeys(req.required_capabilities))
        task = TaskRecord(
            task_id=task_id,
            task_type=req.task_type,
            required=frozenset(caps),
            required_list=caps,
            priority=req.priority,
            payload=req.payload,
            metadata=dict(req.metadata),
            created_at=self._clock(),
            seq=self._seq,
        )
        self._tasks[task_id] = task
        self._live.add(task_id)
        future: asyncio.Future[DelegateReply] = asyncio.get_running_loop().create_future()
        self._delegating[task_id] = future
        try:
            reply = await self._schedule(task, queue=req.queue)
        except BaseException as exc:
            self._forget(task)
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: a duplicate caller may never await it
            raise
        finally:
            self._delegating.pop(task_id, None)
        future.set_result(reply)
        return reply

    async def _schedule(self, task: TaskRecord, queue: bool) -> DelegateReply:
        if self._hooks.wants("hivebus_task_delegate"):
            self._amend(task, await self._hooks.amend_task(task.view()))
        self.stats.delegated(self._clock())
        if await self._place(task):
            return self._reply_for(task)
        if not queue:
            raise HivebusError(
                ErrorCode.NO_AGENT_AVAILABLE,
                f"no free agent with capabilities {task.required_list} accepted the task",
            )
        task.status = TaskStatus.QUEUED
        self.queue.push(task)
        log.info("task queued", extra={"task_id": task.task_id})
        self._emit(
            EventName.TASK_QUEUED,
            task_id=task.task_id,
            task_type=task.task_type,
            priority=task.priority.name.lower(),
        )
        return self._reply_for(task)

    def _amend(self, task: TaskRecord, changes: dict[str, Any]) -> None:
        if "priority" in changes:
            task.priority = TaskPriority.parse(changes["priority"])
        if "required_capabilities" in changes:
            caps = [str(c) for c in dict.fromkeys(changes["required_capabilities"])]
            task.required, task.required_list = frozenset(caps), caps
        if "metadata" in changes:
            task.metadata = {**task.metadata, **dict(changes["metadata"])}
        if "payload" in changes:
            task.payload = changes["payload"]

    def _forget(self, task: TaskRecord) -> None:
        self._tasks.pop(task.task_id, None)
        self._live.discard(task.task_id)
        self.queue.discard(task.task_id)

    def _reply_for(self, task: TaskRecord) -> DelegateReply:
        return DelegateReply(task_id=task.task_id, status=task.status, agent_id=task.agent_id)

    async def _place(self, task: TaskRecord, first: AgentRecord | None = None) -> bool:
        """Offer ``task`` to up to ``offer_candidates`` agents; True once one has it.

        ``first`` is an agent already reserved for this task (the queue feeding a freed
        agent); it is asked before anyone else. True also when the task left the offer state
        some other way (cancelled, or completed by an agent that raced its own acceptance).
        """
        budget = self.config.offer_candidates
        tried: set[str] = set()
        if first is not None:
            tried.add(first.agent_id)
            budget -= 1
            if await self._offer(task, first):
                return True
        while budget > 0:
            candidates = self.registry.candidates(task.required, budget, frozenset(tried))
            if not candidates:
                return False
            if len(candidates) > 1 and self._hooks.wants("hivebus_select_agent"):
                candidates = await self._plugin_order(task, candidates)
            for agent in candidates:
                if not agent.has_free_slot or agent.agent_id in tried:
                    continue  # changed while a hook was awaited
                tried.add(agent.agent_id)
                budget -= 1
                self._reserve(task, agent)
                if await self._offer(task, agent):
                    return True
        return False

    async def _plugin_order(
        self, task: TaskRecord, candidates: list[AgentRecord]
    ) -> list[AgentRecord]:
        chosen = await self._hooks.select_agent(task.view(), [a.view() for a in candidates])
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

    def _reserve(self, task: TaskRecord, agent: AgentRecord) -> None:
        agent.tasks.add(task.task_id)
        self.registry.touch_load(agent)
        task.status = TaskStatus.OFFERED
        task.agent_id = agent.agent_id

    def _release(self, task_id: str, agent_id: str | None) -> AgentRecord | None:
        agent = self.registry.get(agent_id) if agent_id else None
        if agent is not None and task_id in agent.tasks:
            agent.tasks.discard(task_id)
            self.registry.touch_load(agent)
            return agent
        return None

    async def _offer(self, task: TaskRecord, agent: AgentRecord) -> bool:
        """Send the reserved offer and settle it; True when the task no longer needs placing."""
        offer = Offer(
            task_id=task.task_id,
            task_type=task.task_type,
            required_capabilities=task.required_list,
            priority=task.priority,
            payload=task.payload,
            metadata=task.metadata,
            attempt=task.attempts + 1,
        )
        outcome = await self._offers.offer(agent.agent_id, offer)
        if task.status is not TaskStatus.OFFERED or task.agent_id != agent.agent_id:
            return True  # settled while we waited: cancelled, or completed already
        if outcome.accepted and agent.state is AgentState.ACTIVE and self._is_current(agent):
            self._assigned(task, agent)
            return True
        if outcome.result is not OfferResult.NO_RESPONDERS:
            log.info(
                "offer not accepted",
                extra={
                    "task_id": task.task_id,
                    "agent_id": agent.agent_id,
                    "outcome": outcome.result.value,
                    "reason": outcome.reason,
                },
            )
        task.status = TaskStatus.QUEUED
        task.agent_id = None
        self._release(task.task_id, agent.agent_id)
        return False

    def _is_current(self, agent: AgentRecord) -> bool:
        return self.registry.get(agent.agent_id) is agent

    def _assigned(self, task: TaskRecord, agent: AgentRecord) -> None:
        task.status = TaskStatus.ASSIGNED
        task.attempts += 1
        task.assigned_at = self._clock()
        log.info("task assigned", extra={"task_id": task.task_id, "agent_id": agent.agent_id})
        self._emit(
            EventName.TASK_ASSIGNED,
            task_id=task.task_id,
            agent_id=agent.agent_id,
            attempt=task.attempts,
        )
        if self._hooks.wants("hivebus_task_assigned"):
            self._hooks.notify("hivebus_task_assigned", task=task.view(), agent=agent.view())

    def _feed(self, agent: AgentRecord) -> None:
        """Give a freed or new agent the best waiting tasks it can serve."""
        while agent.has_free_slot and len(self.queue):
            task = self.queue.pop_for(agent.capabilities)
            if task is None:
                return
            self._reserve(task, agent)
            self._spawn(self._feed_one(task, agent), name=f"hivebus-offer-{task.task_id}")

    async def _feed_one(self, task: TaskRecord, agent: AgentRecord) -> None:
        if not await self._place(task, first=agent) and task.status is TaskStatus.QUEUED:
            self.queue.push(task)

    def complete(self, req: CompleteRequest) -> TaskView:
        task = self._task(req.task_id)
        if task.status.is_final:
            same = (
                task.status is not TaskStatus.CANCELLED
                and task.agent_id == req.agent_id
                and task.success == req.success
            )
            if same:
                return task.view()  # a retried completion: answered, never counted twice
            raise HivebusError(
                ErrorCode.INVALID_STATE, f"task {task.task_id!r} is already {task.status.value}"
            )
        if task.agent_id != req.agent_id or task.status is TaskStatus.QUEUED:
            raise HivebusError(
                ErrorCode.NOT_TASK_OWNER,
                f"task {task.task_id!r} is not assigned to agent {req.agent_id!r}",
            )
        if task.status is TaskStatus.OFFERED:
            # The agent accepted and finished before its acceptance reached us: record the
            # assignment first, so observers see the same life as for a slower agent.
            agent = self.registry.get(req.agent_id)
            if agent is not None:
                self._assigned(task, agent)
            else:
                task.attempts += 1
                task.assigned_at = self._clock()
        self._finish(task, req.success, req.result, req.error)
        return task.view()

    def _finish(self, task: TaskRecord, success: bool, result: Any, error: str | None) -> None:
        now = self._clock()
        agent_id = task.agent_id
        task.status = TaskStatus.COMPLETED if success else TaskStatus.FAILED
        task.success, task.result, task.finished_at = success, result, now
        task.error = None if success else (error or "failed")
        duration_ms = (now - task.assigned_at) * 1000 if task.assigned_at is not None else None
        self.stats.finished(success, duration_ms)
        self._retire(task)
        name = EventName.TASK_COMPLETED if success else EventName.TASK_FAILED
        log.info(
            "task completed" if success else "task failed",
            extra={"task_id": task.task_id, "agent_id": agent_id, "error": task.error},
        )
        fields: dict[str, Any] = {"task_id": task.task_id, "agent_id": agent_id}
        if duration_ms is not None:
            fields["duration_ms"] = round(duration_ms, 3)
        if not success:
            fields["error"] = task.error
        self._emit(name, **fields)
        hook = "hivebus_task_completed" if success else "hivebus_task_failed"
        if self._hooks.wants(hook):
            self._hooks.notify(hook, task=task.view())
        freed = self._release(task.task_id, agent_id)
        if freed is not None:
            self._feed(freed)

    def _retire(self, task: TaskRecord) -> None:
        self._live.discard(task.task_id)
        self._finished[task.task_id] = None
        while len(self._finished) > self.config.task_retention:
            old, _ = self._finished.popitem(last=False)
            self._tasks.pop(old, None)

    def _task(self, task_id: str) -> TaskRecord:
        task = self._tasks.get(task_id)
        if task is None:
            raise HivebusError(ErrorCode.UNKNOWN_TASK, f"no task {task_id!r}")
        return task

    def get_task(self, task_id: str) -> TaskView:
        return self._task(task_id).view()

    async def cancel(self, task_id: str) -> TaskView:
        task = self._task(task_id)
        if task.status is TaskStatus.CANCELLED:
            return task.view()
        if task.status.is_final:
            raise HivebusError(
                ErrorCode.INVALID_STATE, f"task {task_id!r} is already {task.status.value}"
            )
        agent_id = task.agent_id
        self.queue.discard(task_id)
        task.status = TaskStatus.CANCELLED
        task.finished_at = self._clock()
        self._retire(task)
        log.info("task cancelled", extra={"task_id": task_id, "agent_id": agent_id})
        self._emit(EventName.TASK_CANCELLED, task_id=task_id, agent_id=agent_id)
        freed = self._release(task_id, agent_id)
        if freed is not None:
            await self._offers.withdraw(freed.agent_id, task_id)
            self._feed(freed)
        return task.view()

    # --- views ------------------------------------------------------------------------

    def agents(self) -> list[AgentView]:
        return [agent.view() for agent in self.registry]

    def tasks(self, status: TaskStatus | None = None, limit: int = 100) -> list[TaskView]:
        """Newest first; live tasks are listed before finished ones."""
        live = [self._tasks[t] for t in self._live if t in self._tasks]
        finished = [self._tasks[t] for t in reversed(self._finished) if t in self._tasks]
        chosen = sorted(live, key=lambda t: -t.seq) + finished
        if status is not None:
            chosen = [t for t in chosen if t.status is status]
        return [t.view() for t in chosen[:limit]]

    async def health(self) -> tuple[HealthStatus, list[str]]:
        return self._assess(await self._hooks.health())

    def _assess(self, plugins: dict[str, HealthStatus]) -> tuple[HealthStatus, list[str]]:
        issues: list[str] = []
        statuses = [HealthStatus.HEALTHY]
        for check in self._health_checks:
            found = check()
            if found is not None:
                statuses.append(found[0])
                issues.append(found[1])
        for name, plugin_health in plugins.items():
            if plugin_health is not HealthStatus.HEALTHY:
                statuses.append(HealthStatus.DEGRADED)
                issues.append(f"plugin {name} is {plugin_health.value}")
        error_rate = self.stats.error_rate_percent
        if error_rate > self.config.max_error_rate_percent:
            statuses.append(HealthStatus.DEGRADED)
            issues.append(
                f"error rate {error_rate:.1f}% exceeds {self.config.max_error_rate_percent}%"
            )
        rss = _rss_mb()
        if rss > self.config.max_memory_mb:
            statuses.append(HealthStatus.DEGRADED)
            issues.append(f"memory {rss:.1f} MiB exceeds {self.config.max_memory_mb} MiB")
        return HealthStatus.worst(*statuses), issues

    async def status(self) -> dict[str, Any]:
        now = self._clock()
        uptime = self._monotonic() - self._started_mono
        agents = list(self.registry)
        active = [a for a in agents if a.state is AgentState.ACTIVE]
        plugins = await self._hooks.health()
        health, issues = self._assess(plugins)
        status: dict[str, Any] = {
            "orchestrator_id": self.orchestrator_id,
            "mode": self.config.mode.value,
            "uptime_seconds": round(uptime, 3),
            "health_status": health.value,
            "health_issues": issues,
            "agents": {
                "total": len(agents),
                "active": len(active),
                "busy": sum(1 for a in active if a.tasks),
                "offline": len(agents) - len(active),
                "by_role": dict(Counter(a.role.value for a in active)),
            },
            "tasks": {
                "active": len(self._live) - len(self.queue),
                "queued": len(self.queue),
                "completed_total": self.stats.completed_total,
                "error_total": self.stats.error_total,
                "delegations_total": self.stats.delegations_total,
            },
            "performance": {
                "average_task_duration_ms": round(self.stats.average_task_duration_ms, 3),
                "error_rate_percent": round(self.stats.error_rate_percent, 3),
                "delegations_per_second": round(self.stats.delegations_per_second(now, uptime), 3),
                "memory_mb": round(_rss_mb(), 3),
            },
            "capabilities_index": self.registry.capability_counts(),
            "plugins": {name: h.value for name, h in plugins.items()},
            "timestamp": now,
        }
        extensions = await self._hooks.status_contributions(self)
        if extensions:
            status["extensions"] = extensions
        return status
