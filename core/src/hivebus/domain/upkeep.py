"""Upkeep: everything that happens because time passed, in one periodic pass.

Silent agents are marked offline; queue deadlines and execution timeouts are applied; waiting
tasks whose time has come move on; what a crash left behind is repaired (an offer whose
sender died, a task held by an agent that left, a slot reserved for nothing, a seat nobody
holds, a concurrency place held for a task off its agent); waiting work is offered to free
agents and long-gone agents are forgotten. Each repair waits a grace period first: another replica's
watch may only be a moment ahead of ours.
"""

from __future__ import annotations

import asyncio

from hivebus_hookspecs.models import AgentState, TaskStatus

from ..errors import HivebusError
from .agents import Agents
from .cas import Contended
from .gates import Gates
from .kernel import Kernel, log
from .placement import Placement
from .ports import Conflict, OfferResult, StateUnavailable
from .tasks import TaskRecord
from .transitions import Transitions
from .waiting import Waiting

__all__ = ["Upkeep"]


class Upkeep:
    def __init__(
        self,
        kernel: Kernel,
        agents: Agents,
        placement: Placement,
        transitions: Transitions,
        waiting: Waiting,
        gates: Gates,
    ) -> None:
        self._k = kernel
        self._agents = agents
        self._placement = placement
        self._transitions = transitions
        self._waiting = waiting
        self._gates = gates
        self._gates_checked = kernel.monotonic()
        self.ticker: asyncio.Task[None] | None = None
        self._bus_up = True
        self._orphans: dict[str, float] = {}  # task -> first seen held by a departed agent
        self._stray_seats: dict[str, float] = {}  # agent -> first seen seated but not active
        self._seats_checked = kernel.monotonic()

    def start(self) -> None:
        if self.ticker is None:
            self.ticker = asyncio.create_task(self._tick_forever(), name="hivebus-ticker")

    async def _tick_forever(self) -> None:
        interval = max(self._k.config.heartbeat_interval_s / 2, 0.05)
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
            self._placement.sweep,
            self._agents.prune_offline,
            self._release_stray_seats,
            self._repair_gates,
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
        seen = self._k.cache.seen
        now = self._k.monotonic()
        for agent_id in seen:
            seen[agent_id] = now
        self._bus_up = True

    async def reap(self) -> list[str]:
        """Mark agents silent for ``offline_after_missed`` heartbeat intervals offline."""
        if not self._bus_up:
            return []
        k = self._k
        limit = k.config.heartbeat_interval_s * k.config.offline_after_missed
        now = k.monotonic()
        gone = [
            agent.agent_id
            for agent in k.registry
            if agent.state is AgentState.ACTIVE
            and now - k.cache.seen.setdefault(agent.agent_id, now) > limit
        ]
        for agent_id in gone:
            await self._agents.mark_offline(agent_id)
        return gone

    async def _release_stray_seats(self) -> None:
        """Give back seats no active agent holds: a crash between taking a seat and storing
        the registration (or between going offline and giving the seat back) leaves one."""
        k = self._k
        grace = k.config.heartbeat_interval_s * 2
        now = k.monotonic()
        if now - self._seats_checked < grace:
            return
        self._seats_checked = now
        stray = {
            agent_id: self._stray_seats.get(agent_id, now)
            for agent_id in await k.state.seat_holders()
            if not k.is_active(agent_id) and agent_id not in k.cache.registering
        }
        for agent_id, since in stray.items():
            if now - since >= grace:
                log.warning("releasing a stray seat", extra={"agent_id": agent_id})
                await k.state.release_seat(agent_id)
        self._stray_seats = {a: t for a, t in stray.items() if now - t < grace}

    async def _repair_gates(self) -> None:
        """Concurrency places a crash left held, every other grace period."""
        now = self._k.monotonic()
        if now - self._gates_checked >= self._k.config.heartbeat_interval_s * 2:
            self._gates_checked = now
            await self._gates.repair()

    async def _expire_and_recover(self) -> None:
        """Deadlines, and tasks a crash left with nobody to finish them.

        Each task is handled on its own: one that cannot be handled now (it changed under
        us, it stays contended, the store is failing over) does not hold up the others.
        """
        live = self._k.cache.live
        for task_id in list(live):
            try:
                await self._check_live_task(task_id)
            except (HivebusError, StateUnavailable, Contended) as exc:
                log.info("task check postponed", extra={"task_id": task_id, "error": str(exc)})
        for task_id in [t for t in self._orphans if t not in live]:
            del self._orphans[task_id]
        self._placement.forget_refusals()

    async def _check_live_task(self, task_id: str) -> None:
        k = self._k
        task = k.cache.tasks.get(task_id)
        if task is None:
            return
        now = k.clock()
        if task.status.is_waiting:
            await self._waiting.check(task)
            return
        if task.status is TaskStatus.QUEUED:
            if task.queue_deadline is not None and now > task.queue_deadline:
                await self._transitions.expire(task_id)
            return
        if task_id in self._placement.offering or task.agent_id is None:
            return
        agent = k.registry.get(task.agent_id)
        if agent is None or agent.state is not AgentState.ACTIVE:
            # Its agent left, but whoever stored that died before giving the task back. Or
            # another replica's watch is a moment ahead of ours: so only after a grace.
            first_seen = self._orphans.setdefault(task_id, k.monotonic())
            if k.monotonic() - first_seen > k.config.heartbeat_interval_s * 2:
                await self._transitions.requeue(
                    task_id, task.agent_id, f"agent {task.agent_id} is gone"
                )
            return
        self._orphans.pop(task_id, None)
        if task.status is TaskStatus.ASSIGNED:
            if not task.overdue(now):
                return
            # Our cache may lag another replica's write (a progress report it handled, a new
            # assignment): decide on the stored record, not on what we last heard.
            stored = await k.cache.refresh_task(task_id)
            if (
                stored is not None
                and stored.status is TaskStatus.ASSIGNED
                and stored.agent_id == task.agent_id
                and stored.overdue(now)
            ):
                await self._transitions.time_out(stored)
        elif task.offered_at is not None and now - task.offered_at > self._stale_offer_s:
            await self._recover_offer(task)

    @property
    def _stale_offer_s(self) -> float:
        """An offer older than this has nobody waiting for its answer any more."""
        config = self._k.config
        return config.offer_timeout_s * 2 + config.heartbeat_interval_s

    async def _recover_offer(self, task: TaskRecord) -> None:
        """An offer whose sender died (a core crashed mid-offer): ask the same agent again.

        The same agent first, because it may have accepted and be working on it already;
        the compare-and-set on ``offered_at`` makes one replica the one that asks (a single
        write, not retried: the loser leaves the asking to the winner).
        """
        k = self._k
        try:
            claimed = await k.cache.save_task(task.evolve(offered_at=k.clock()))
        except Conflict:
            await k.cache.refresh_task(task.task_id)
            return
        agent_id = claimed.agent_id
        log.info("recovering an offer", extra={"task_id": task.task_id, "agent_id": agent_id})
        agent = k.registry.get(agent_id) if agent_id else None
        if agent_id is None or agent is None or agent.state is not AgentState.ACTIVE:
            await self._placement.requeue_unplaced(task.task_id)
            return
        k.spawn(self._reoffer(task.task_id, agent_id), name=f"hivebus-reoffer-{task.task_id}")

    async def _reoffer(self, task_id: str, agent_id: str) -> None:
        """Ask only the agent it was offered to: it may be running it already.

        Silence (no responders, a timeout) keeps the offer standing for the next round: an
        agent that is really gone is caught by the liveness rule, which requeues the task.
        Only an explicit refusal sends the task back to the queue now.
        """
        placement = self._placement
        outcome = await placement.ask(task_id, agent_id)
        done, _ = await placement.accept(task_id, agent_id, outcome)
        if done or outcome.result in (OfferResult.TIMEOUT, OfferResult.NO_RESPONDERS):
            return
        await placement.requeue_unplaced(task_id)
