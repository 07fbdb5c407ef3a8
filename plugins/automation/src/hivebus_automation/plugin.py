"""The automation plugin: hooks note what agents do, a timer acts through the context.

Hooks only append to a bounded inbox (constant time, no awaiting), with one exception: a
half-open agent's trial assignment is recorded at once, so no second task reaches it. Every
``interval_s`` a timer the host owns applies the inbox to the breakers in the plugin's bucket
(compare-and-set: both replicas agree), acts on failures by recovery tier, wakes and puts
agents to sleep, and caches the report the status shows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from hivebus_hookspecs import (
    AgentView,
    Event,
    EventName,
    PluginContext,
    TaskAmendment,
    TaskPriority,
    TaskStatus,
    TaskView,
    hookimpl,
)
from pydantic import JsonValue

from .circuits import Circuits
from .inbox import Inbox, Seen
from .recoverer import Recoverer
from .settings import AutomationSettings
from .sleepers import Sleepers
from .streaks import Streaks

__all__ = ["NAME", "AutomationPlugin", "AutomationSettings"]

NAME = "automation"

log = logging.getLogger("hivebus.automation")


class AutomationPlugin:
    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.time
        """Wall-clock time, as the core stamps tasks; a test may replace it."""
        self.settings = AutomationSettings()
        self.context: PluginContext | None = None
        self.error: str | None = None
        """Why the plugin is not working (its settings), shown in its status."""
        self.circuits: Circuits | None = None
        self.sleepers: Sleepers | None = None
        self.recoverer: Recoverer | None = None
        self._reset()

    def _reset(self) -> None:
        self.inbox = Inbox(self.settings.max_tracked)
        self.agents = Streaks()
        self.task_types = Streaks()
        self.failures_seen = 0
        self.boosted = 0
        self.evaluated_at: float | None = None

    # --- lifecycle ------------------------------------------------------------------------

    @hookimpl
    async def hivebus_startup(self, context: PluginContext) -> None:
        try:
            self.settings = context.settings(AutomationSettings)
        except ValueError as exc:  # it names the bad settings: the host records it, we say so
            self.error = str(exc)
            raise
        self.error = None
        self.context = context
        self._reset()
        self.circuits = Circuits(context, NAME, self.settings.breaker)
        self.sleepers = Sleepers(context, self.settings.sleep)
        book = context.alert_book(stale_after_s=max(60.0, 10 * self.settings.interval_s))
        self.recoverer = Recoverer(context, self.settings.recovery, book, self._sleep_agent)
        # Nothing here touches the bucket: opening it may take longer than a start-up hook
        # may run. The first evaluation reads it.
        context.every(self.settings.interval_s, self.evaluate, name="evaluate")

    async def _sleep_agent(self, agent_id: str, reason: str) -> None:
        if self.sleepers is not None:
            await self.sleepers.sleep(agent_id, reason, self.clock())

    # --- hooks: note only -------------------------------------------------------------------

    @hookimpl
    def hivebus_task_delegate(self, task: TaskView) -> TaskAmendment | None:
        if task.task_type in self.settings.priority_boost_types and (
            task.priority < TaskPriority.HIGH
        ):
            self.boosted += 1
            return {"priority": "high"}
        return None

    @hookimpl
    def hivebus_task_assigned(self, task: TaskView, agent: AgentView) -> Awaitable[None] | None:
        # A plain function: an async one would cost the host a coroutine and a timeout scope
        # on every assignment. Only a trial returns an awaitable, which the host awaits.
        if self.sleepers is not None:
            self.sleepers.idle.busy(agent.agent_id, self.clock())
        self.inbox.put(Seen("assigned", agent.agent_id, task.task_id))
        if agent.on_trial and agent.quarantined_by == NAME and self.circuits is not None:
            return self.circuits.trial_assigned(agent.agent_id, task.task_id)
        return None

    @hookimpl
    def hivebus_task_completed(self, task: TaskView) -> None:
        self.task_types.clear(task.task_type)
        if task.agent_id is None:
            return
        self.agents.clear(task.agent_id)
        if self.sleepers is not None:
            self.sleepers.idle.busy(task.agent_id, self.clock())
        self.inbox.put(Seen("success", task.agent_id, task.task_id))

    @hookimpl
    def hivebus_task_failed(self, task: TaskView) -> None:
        # A dead task has let go of its agent: the last attempt names who failed it. No agent
        # at all when a dependency failed: nothing to hold against an agent.
        agent_id = task.agent_id or (task.history[-1].agent_id if task.history else None)
        self._streak(agent_id, task.task_type)
        if agent_id is not None:
            self.inbox.put(
                Seen(
                    "failure",
                    agent_id,
                    task.task_id,
                    detail=task.error,
                    status=task.status.value,
                    core_retries=task.retry is not None,
                    attempts=task.attempts,
                )
            )

    @hookimpl
    def hivebus_event(self, event: Event) -> None:
        name = event.event
        # Most events are neither: they cost two comparisons, not a look at the extras.
        if name is not EventName.TASK_DECLINED and name is not EventName.TASK_RETRYING:
            return
        if not event.agent_id or not event.task_id:
            return
        extra = event.model_extra or {}
        if name is EventName.TASK_DECLINED:
            self._declined(event.agent_id, event.task_id, extra.get("outcome"), extra.get("reason"))
            return
        # A failed attempt the core's retry policy will retry: no task_failed hook for it.
        error = extra.get("error")
        attempts = extra.get("attempts")
        self._streak(event.agent_id, None)
        self.inbox.put(
            Seen(
                "failure",
                event.agent_id,
                event.task_id,
                detail=error if isinstance(error, str) else None,
                status=TaskStatus.RETRYING.value,
                core_retries=True,
                attempts=attempts if isinstance(attempts, int) else 0,
            )
        )

    def _declined(self, agent_id: str, task_id: str, outcome: object, reason: object) -> None:
        """An offer refused or left unanswered (``events.task.declined``, seen by the replica
        that made it)."""
        why = reason if isinstance(reason, str) else None
        if outcome == "timeout":
            self.inbox.put(Seen("timeout", agent_id, task_id, detail=why or "no answer"))
        elif outcome == "refused" and (why or "") not in self.settings.breaker.ignore_refusals:
            self.inbox.put(Seen("refusal", agent_id, task_id, detail=why or "refused"))

    @hookimpl
    def hivebus_agent_removed(self, agent: AgentView) -> None:
        self.agents.clear(agent.agent_id)  # a warning about an agent that left is stale
        if self.sleepers is not None:
            self.sleepers.idle.forget(agent.agent_id)

    def _streak(self, agent_id: str | None, task_type: str | None) -> None:
        self.failures_seen += 1
        threshold = self.settings.failure_threshold
        if agent_id is not None and self.agents.fail(agent_id) == threshold:
            log.warning(
                "agent failure streak reached the threshold",
                extra={"agent_id": agent_id, "threshold": threshold},
            )
        if task_type is not None and self.task_types.fail(task_type) == threshold:
            log.warning(
                "task type failure streak reached the threshold",
                extra={"task_type": task_type, "threshold": threshold},
            )

    # --- the evaluation, every interval_s ---------------------------------------------------

    async def evaluate(self) -> None:
        ctx, circuits, sleepers = self.context, self.circuits, self.sleepers
        if ctx is None or circuits is None or sleepers is None or self.recoverer is None:
            return
        now = self.clock()
        if self.evaluated_at is None:
            await circuits.refresh()  # breakers left open by an earlier run go on
        for seen in self.inbox.take():
            # One outcome that cannot be applied (the bucket contended, the task moved on
            # meanwhile) must not cost the others.
            try:
                if self.settings.breaker.enabled:
                    await circuits.observe(seen.agent_id, seen.outcome, now, seen.detail)
                if seen.outcome == "failure" and self.settings.recovery.enabled:
                    await self.recoverer.failed(seen)
            except Exception as exc:
                log.warning(
                    "could not apply an outcome",
                    extra={"task_id": seen.task_id, "agent_id": seen.agent_id, "error": str(exc)},
                )
        if self.settings.breaker.enabled:
            await circuits.refresh()
            await circuits.tick(now)
        if self.settings.sleep.enabled or self.settings.recovery.enabled:
            # Only these put agents to sleep; otherwise the agents are not read at all.
            await sleepers.tick(now, ctx.roster())
        await self.recoverer.upkeep()
        self.evaluated_at = now

    # --- what the core asks ------------------------------------------------------------------

    @hookimpl
    def hivebus_status(self) -> dict[str, JsonValue]:
        threshold = self.settings.failure_threshold
        report: dict[str, JsonValue] = {
            "failure_threshold": threshold,
            "failing_agents": dict(self.agents.at_least(threshold)),
            "failing_task_types": dict(self.task_types.at_least(threshold)),
            "failures_seen": self.failures_seen,
            "priority_boosts": self.boosted,
            "evaluated_at": self.evaluated_at,
            "dropped": self.inbox.dropped,
            "error": self.error,
        }
        if self.circuits is not None:
            report["breakers"] = self.circuits.report()
            report["breaker_changes"] = self.circuits.changes
        if self.sleepers is not None:
            report.update(self.sleepers.report())
        if self.recoverer is not None:
            report["recovery"] = self.recoverer.report()
        return report

    @hookimpl
    def hivebus_health(self) -> str:
        if self.error is not None:
            return "unhealthy"
        threshold = self.settings.failure_threshold
        if self.agents.at_least(threshold) or self.task_types.at_least(threshold):
            return "degraded"
        return "healthy"
