"""Placement: who is offered a task, in what order, and what an offer's answer changes.

Selection order (the registry's candidates, a plugin's pick), reserving an agent's slot before
the offer is stored, the offer round trip and recording its answer, feeding waiting tasks to
an agent with room, and the back-off of a task that is refused. Nothing here finishes a task:
that is ``transitions``.
"""

from __future__ import annotations

import contextlib
from typing import Literal

from hivebus_hookspecs.models import AgentState, ErrorCode, EventName, Offer, TaskStatus

from ..errors import HivebusError
from .cas import SKIP, Contended, Skip, update_task
from .gates import Gates
from .kernel import Kernel, log
from .ports import Conflict, Later, OfferOutcome, OfferResult
from .registry import AgentRecord, AgentRegistry
from .tasks import TaskRecord

__all__ = ["Placement", "assigned_copy", "held_by"]


class Placement:
    def __init__(self, kernel: Kernel, gates: Gates) -> None:
        self._k = kernel
        self._gates = gates
        self.offering: set[str] = set()
        """Tasks whose offer this process is awaiting (nobody else should touch them)."""
        # agent -> slots this process is reserving right now (the write not yet stored): other
        # coroutines here pass over a slot that is being taken rather than race for it
        self.claimed: dict[str, int] = {}
        # task -> (offers refused or unanswered in a row, monotonic time it may be offered again)
        self._refusals: dict[str, tuple[int, float]] = {}

    # --- offering a task to the best agents ---------------------------------------------

    async def place(self, task: TaskRecord, first: str | None = None) -> TaskRecord | None:
        """Offer ``task`` to up to ``offer_candidates`` agents until one accepts.

        ``task`` is the record as last known (revision 0 when not yet stored). ``first`` is an
        agent already reserved for it, with the task stored as offered to it. Returns the
        settled record when the task needs no more placing (accepted, or settled elsewhere),
        ``None`` when nobody took it.
        """
        k = self._k
        budget = k.config.offer_candidates
        tried: set[str] = set()
        if first is not None:
            tried.add(first)
            budget -= 1
            settled = await self._offer(task.task_id, first)
            if settled is not None:
                return settled
            # the place at its gates, taken when it was stored as offered, goes on
            current = k.cache.tasks.get(task.task_id, task)
            return await self._place(current, budget, tried, current.gate)
        stamp = None
        if self._gates.applies(task):
            stamp = await self._gates.enter(task)
            if stamp is None:
                return None  # its key is full or its type's rate spent: it waits in line
        try:
            placed = await self._place(task, budget, tried, stamp)
        except BaseException:
            await self._gates.leave(task, stamp)
            raise
        if placed is None:
            await self._gates.leave(task, stamp)
        return placed

    async def _place(
        self, task: TaskRecord, budget: int, tried: set[str], stamp: str | None
    ) -> TaskRecord | None:
        k = self._k
        while budget > 0:
            candidates = self._candidates(task, budget, frozenset(tried))
            if not candidates:
                return None
            if len(candidates) > 1 and k.hooks.wants("hivebus_select_agent"):
                candidates = await self._plugin_order(task, candidates)
            for candidate in candidates:
                tried.add(candidate.agent_id)
                budget -= 1
                if not self.reserve(candidate.agent_id):
                    continue
                current = k.cache.tasks.get(task.task_id, task)
                if current.revision and current.status is not TaskStatus.OFFERED:
                    self._unclaim(candidate.agent_id)
                    return current  # settled while an earlier offer was out
                try:
                    await self._store_offered(current, candidate.agent_id, stamp)
                except Conflict:  # another replica is placing it: it has the last word
                    return await k.cache.refresh_task(task.task_id)
                settled = await self._offer(task.task_id, candidate.agent_id)
                if settled is not None:
                    return settled
        return None

    def _candidates(
        self, task: TaskRecord, budget: int, tried: frozenset[str]
    ) -> list[AgentRecord]:
        """Who is offered the task next: the agent it requires (only that one), the agents
        it prefers, then the registry's order; the agent that failed its last attempt last."""
        registry, claimed = self._k.registry, self.claimed
        if not (task.require_agent or task.prefer_agents or task.history):
            return registry.candidates(task.required, budget, tried, claimed)
        if task.require_agent is not None:
            if task.require_agent in tried:
                return []
            required = registry.get(task.require_agent)
            if required is None or not _free_for(registry, required, task, claimed):
                return []
            return [required]
        preferred: list[AgentRecord] = []
        for agent_id in task.prefer_agents:
            agent = registry.get(agent_id)
            if (
                agent is not None
                and agent_id not in tried
                and _free_for(registry, agent, task, claimed)
            ):
                preferred.append(agent)
        exclude = tried | {a.agent_id for a in preferred}
        candidates = preferred + registry.candidates(task.required, budget, exclude, claimed)
        candidates = candidates[:budget]
        if task.history and len(candidates) > 1:
            failed_last = task.history[-1]["agent_id"]
            candidates.sort(key=lambda a: a.agent_id == failed_last)  # stable: order kept
        return candidates

    async def _plugin_order(
        self, task: TaskRecord, candidates: list[AgentRecord]
    ) -> list[AgentRecord]:
        k = self._k
        chosen = await k.hooks.select_agent(task.view(), [k.view(a) for a in candidates])
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

    # --- an agent's slots ---------------------------------------------------------------

    def reserve(self, agent_id: str) -> bool:
        """Claim one of the agent's slots for a task about to be stored as offered to it.

        Nothing is written: an agent's load is the tasks whose records say it holds them.
        The claim counts here until the caller has stored the offer (or failed to) and calls
        ``_unclaim``, so a concurrent delegation in this process picks another agent rather
        than overfill this one. Between replicas the agent arbitrates: an offer past its
        ``max_tasks`` is refused (``busy``), and the task goes to the next candidate.
        """
        registry = self._k.registry
        agent = registry.get(agent_id)
        if agent is None or not agent.in_rotation:
            return False
        if registry.load(agent_id) + self.claimed.get(agent_id, 0) >= agent.slots:
            return False
        self.claimed[agent_id] = self.claimed.get(agent_id, 0) + 1
        return True

    async def _store_offered(self, task: TaskRecord, agent_id: str, stamp: str | None) -> None:
        """Store ``task`` as offered to ``agent_id``, whose slot ``reserve`` claimed; the claim
        ends with the write, stored (the record holds the slot now) or not (``Conflict``)."""
        try:
            await self._k.cache.save_task(
                task.evolve(
                    status=TaskStatus.OFFERED,
                    agent_id=agent_id,
                    offered_at=self._k.clock(),
                    **_holding(stamp),
                )
            )
        finally:
            self._unclaim(agent_id)

    def _unclaim(self, agent_id: str) -> None:
        left = self.claimed[agent_id] - 1
        if left:
            self.claimed[agent_id] = left
        else:
            del self.claimed[agent_id]

    def free(self, agent_id: str | None) -> None:
        """A task left the agent (its record says so): offer it the next waiting task."""
        if not agent_id or not len(self._k.queue):
            return
        agent = self._k.registry.get(agent_id)
        if agent is not None and self._k.registry.has_free_slot(agent):
            self._k.spawn(self.feed(agent_id), name=f"hivebus-feed-{agent_id}")

    # --- one offer ----------------------------------------------------------------------

    async def ask(self, task_id: str, agent_id: str) -> OfferOutcome:
        """One offer round trip for the stored task."""
        task = self._k.cache.tasks[task_id]
        offer = Offer(
            task_id=task.task_id,
            task_type=task.task_type,
            required_capabilities=task.required_list,
            priority=task.priority,
            payload=task.payload,
            metadata=task.metadata,
            attempt=task.attempts + 1,
            depends_on=task.depends_on,
        )
        self.offering.add(task_id)
        try:
            return await self._k.offers.offer(agent_id, offer)
        finally:
            self.offering.discard(task_id)

    async def accept(
        self, task_id: str, agent_id: str, outcome: OfferOutcome
    ) -> tuple[bool, TaskRecord | None]:
        """Record an offer's outcome. ``(True, record)``: the task needs no more placing."""
        k = self._k

        def assign(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            if task is None or not _offered_to(task, agent_id):
                return SKIP  # settled while we waited: cancelled, done, taken back
            agent = k.registry.get(agent_id)
            if not (outcome.accepted and agent is not None and agent.state is AgentState.ACTIVE):
                return SKIP
            return assigned_copy(task, k.clock())

        try:
            seen, assigned = await update_task(k.cache, task_id, assign)
        except Contended:
            # Left offered; if the agent did accept, the stale-offer rule asks it again.
            return True, k.cache.tasks.get(task_id)
        if assigned is not None:
            return True, self.assigned(assigned)
        return seen is None or not _offered_to(seen, agent_id), seen

    async def _offer(self, task_id: str, agent_id: str) -> TaskRecord | None:
        """Send the reserved, stored offer and settle it. ``None``: not accepted."""
        outcome = await self.ask(task_id, agent_id)
        done, task = await self.accept(task_id, agent_id, outcome)
        if done:
            return task
        self._note_refusal(task_id)
        if outcome.result in (OfferResult.REFUSED, OfferResult.TIMEOUT):
            # Observers (metrics, circuit breakers) need to see offers an agent turned down.
            self._k.emit(
                EventName.TASK_DECLINED,
                task_id=task_id,
                agent_id=agent_id,
                outcome=outcome.result.value,
                reason=outcome.reason,
            )
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
        return None

    def assigned(self, task: TaskRecord) -> TaskRecord:
        """Announce a task stored as assigned."""
        k = self._k
        self._refusals.pop(task.task_id, None)
        log.debug("task assigned", extra={"task_id": task.task_id, "agent_id": task.agent_id})
        k.emit(
            EventName.TASK_ASSIGNED,
            task_id=task.task_id,
            agent_id=task.agent_id,
            attempt=task.attempts,
        )
        if k.hooks.wants("hivebus_task_assigned"):
            agent = k.registry.get(task.agent_id or "")
            if agent is not None:
                k.hooks.notify(
                    "hivebus_task_assigned",
                    task=Later(task.view),
                    agent=k.view_later(agent),
                )
        return task

    # --- refusals -----------------------------------------------------------------------

    def _note_refusal(self, task_id: str) -> None:
        """An offer of ``task_id`` was not accepted: it waits before it is offered again.

        Without this, a task every agent refuses would be taken from the head of the queue
        and offered again at every pass, and the tasks behind it would never be offered.
        """
        config = self._k.config
        count = self._refusals.get(task_id, (0, 0.0))[0] + 1
        delay = min(
            config.refusal_backoff_s * 2 ** min(count - 1, 16), config.refusal_backoff_max_s
        )
        self._refusals[task_id] = (count, self._k.monotonic() + delay)

    def _ready(self, task_id: str, agent_id: str) -> bool:
        """May ``task_id`` be offered to ``agent_id`` now: not backing off after a refusal,
        not waiting at its gates, and not bound to another agent?"""
        refused = self._refusals.get(task_id)
        if refused is not None and self._k.monotonic() < refused[1]:
            return False
        task = self._k.cache.tasks.get(task_id)
        if task is None:
            return True
        if task.require_agent is not None and task.require_agent != agent_id:
            return False
        return not self._gates.applies(task) or self._gates.ready(task)

    def forget_refusals(self) -> None:
        """Drop the back-off of tasks that are not live any more."""
        live = self._k.cache.live
        for task_id in [t for t in self._refusals if t not in live]:
            del self._refusals[task_id]

    # --- the queue ----------------------------------------------------------------------

    async def feed(self, agent_id: str) -> None:
        """Give a new or freed agent the best waiting tasks it can serve."""
        k = self._k
        while len(k.queue):
            agent = k.registry.get(agent_id)
            if agent is None or not k.registry.has_free_slot(agent):
                return
            task = k.queue.pop_for(agent.capability_set, lambda t: self._ready(t, agent_id))
            if task is None:
                return
            outcome = "failed"
            try:
                outcome = await self._offer_from_queue(task.task_id, agent_id)
            finally:
                # Whatever stopped it (a refusal, a lost race, the store failing over), a task
                # taken out of line and not offered goes back, keeping its place.
                if outcome != "offered":
                    self._back_in_line(task.task_id)
            if outcome == "failed":
                return  # the next periodic pass tries again
            # offered, or held at its gates (now known here): the next one in line

    async def _offer_from_queue(
        self, task_id: str, agent_id: str
    ) -> Literal["offered", "gated", "failed"]:
        """Pass the task's gates, reserve the agent and store the task as offered to it; the
        offer goes out after."""
        k = self._k
        current = k.cache.tasks.get(task_id)
        if current is None or current.status is not TaskStatus.QUEUED:
            return "failed"
        stamp = None
        if self._gates.applies(current):
            stamp = await self._gates.enter(current)
            if stamp is None:
                return "gated"
        if stamp is not None:  # its gates were awaited: it may have moved on meanwhile
            entered, current = current, k.cache.tasks.get(task_id)
            if current is None or current.status is not TaskStatus.QUEUED:
                await self._gates.leave(entered, stamp)
                return "failed"
        if not self.reserve(agent_id):
            await self._gates.leave(current, stamp)
            return "failed"
        try:
            await self._store_offered(current, agent_id, stamp)
        except Conflict:  # another replica is dispatching it
            await self._gates.leave(current, stamp)
            await k.cache.refresh_task(task_id)
            return "failed"
        k.spawn(self._settle(task_id, agent_id), name=f"hivebus-offer-{task_id}")
        return "offered"

    async def _settle(self, task_id: str, agent_id: str) -> None:
        """Finish placing a task already stored as offered to ``agent_id``."""
        k = self._k
        task = k.cache.tasks.get(task_id)
        if task is None:
            return
        if await self.place(task, first=agent_id) is None:
            await self.requeue_unplaced(task_id)
            # The agent that refused may have room for the next task in line (this one now
            # waits out its back-off): offer it now rather than at the next pass.
            if len(k.queue):
                k.spawn(self.feed(agent_id), name=f"hivebus-feed-{agent_id}")

    async def requeue_unplaced(self, task_id: str) -> None:
        """Nobody accepted a task from the queue: it goes back in line, keeping its place."""

        def back_in_line(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            if task is None or task.status is not TaskStatus.OFFERED:
                return SKIP
            return task.evolve(status=TaskStatus.QUEUED, agent_id=None, offered_at=None)

        # Contended: left offered; the stale-offer rule asks again, then puts it back.
        with contextlib.suppress(Contended):
            await update_task(self._k.cache, task_id, back_in_line)

    def _back_in_line(self, task_id: str) -> None:
        task = self._k.cache.tasks.get(task_id)
        if task is not None and task.status is TaskStatus.QUEUED:
            self._k.queue.push(task)

    async def dispatch(self, task_id: str) -> None:
        """A requeued task looks for a free agent right away rather than at the next tick."""
        k = self._k
        task = k.cache.tasks.get(task_id)
        if task is None or task.status is not TaskStatus.QUEUED:
            return
        candidates = k.registry.candidates(
            task.required, k.config.offer_candidates, claimed=self.claimed
        )
        for agent in candidates:
            await self.feed(agent.agent_id)
            current = k.cache.tasks.get(task_id)
            if current is None or current.status is not TaskStatus.QUEUED:
                return

    async def sweep(self) -> None:
        """Offer waiting work to every agent with a free slot.

        Tasks are normally handed out the moment an agent registers or frees a slot; this
        periodic pass catches what an earlier refusal or a replica's crash left waiting.
        """
        k = self._k
        for agent in k.registry.free_agents():
            if not len(k.queue):
                return
            await self.feed(agent.agent_id)


def held_by(task: TaskRecord, agent_id: str, now: float) -> TaskRecord:
    """``task`` as held by ``agent_id``, who reports on it (a completion, progress): refused
    as ``invalid_state`` when it is final, ``not_task_owner`` when another holds it or none.

    A task still offered to the agent is returned assigned: the agent reports, so it
    accepted, and its acceptance is still on the way; recording the assignment with the
    report gives observers the same life as for a slower agent.
    """
    if task.status.is_final:
        raise HivebusError(
            ErrorCode.INVALID_STATE, f"task {task.task_id!r} is already {task.status.value}"
        )
    if task.agent_id != agent_id or task.status not in (TaskStatus.OFFERED, TaskStatus.ASSIGNED):
        raise HivebusError(
            ErrorCode.NOT_TASK_OWNER, f"task {task.task_id!r} is not held by agent {agent_id!r}"
        )
    return assigned_copy(task, now) if task.status is TaskStatus.OFFERED else task


def assigned_copy(task: TaskRecord, now: float) -> TaskRecord:
    return task.evolve(status=TaskStatus.ASSIGNED, attempts=task.attempts + 1, assigned_at=now)


def _holding(stamp: str | None) -> dict[str, str]:
    """The change recording a concurrency place, none for the many tasks without one (a
    change of ``gate`` makes the record's size be measured again)."""
    return {"gate": stamp} if stamp is not None else {}


def _free_for(
    registry: AgentRegistry, agent: AgentRecord, task: TaskRecord, claimed: dict[str, int]
) -> bool:
    """Whether ``agent`` can be offered ``task`` now (capable, in rotation, a slot free)."""
    if not agent.in_rotation or not task.required <= agent.capability_set:
        return False
    return registry.load(agent.agent_id) + claimed.get(agent.agent_id, 0) < agent.slots


def _offered_to(task: TaskRecord, agent_id: str) -> bool:
    return task.status is TaskStatus.OFFERED and task.agent_id == agent_id
