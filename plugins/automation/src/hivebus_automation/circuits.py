"""The breakers of every agent, kept in the plugin's bucket and acted on through the context.

A change of state is a compare-and-set on the agent's record (``breaker.<agent>``); the
replica whose write made it publishes ``events.plugin.automation.breaker`` and quarantines,
puts on trial or releases the agent. Every evaluation also reconciles each agent with its
breaker (a replica killed between its write and its action leaves that to the others), and
turns open breakers whose cooldown has passed half-open.
"""

from __future__ import annotations

import logging
from typing import Any

from hivebus_hookspecs import AgentView, PluginContext, bucket_key
from pydantic import JsonValue

from . import breakers
from .breakers import Change, Outcome, Record, State, quarantine_reason, state_of
from .keys import BREAKER
from .settings import BreakerSettings

__all__ = ["Circuits"]

log = logging.getLogger("hivebus.automation")


class Circuits:
    def __init__(self, context: PluginContext, name: str, settings: BreakerSettings) -> None:
        self.context = context
        self.name = name
        self.settings = settings
        self.known: dict[str, Record] = {}
        """The records this replica last read or wrote, by agent: every agent with a breaker
        that is not closed or has a count running."""
        self.changes = 0

    def troubled(self, agent_id: str) -> bool:
        record = self.known.get(agent_id)
        if record is None:
            return False
        counts = (record.get(k) for k in ("failures", "refusals", "timeouts"))
        return state_of(record) is not State.CLOSED or any(counts)

    def _offers_counted(self, agent_id: str) -> bool:
        record = self.known.get(agent_id) or {}
        return bool(record.get("refusals") or record.get("timeouts"))

    async def observe(
        self, agent_id: str, outcome: Outcome, now: float, detail: str | None
    ) -> None:
        if outcome in ("success", "assigned") and not self.troubled(agent_id):
            return  # nothing to reset: no write for an agent that is doing well
        if outcome == "assigned" and not self._offers_counted(agent_id):
            return  # an acceptance resets only refusals and timeouts
        change: Change | None = None

        def apply(current: JsonValue) -> JsonValue:
            nonlocal change
            record, change = breakers.observe(
                current, agent_id, outcome, now, self.settings, detail
            )
            return record

        key = bucket_key(BREAKER, agent_id)
        stored = await self.context.kv.update(key, apply)
        await self._stored(agent_id, stored, change)
        if not self.troubled(agent_id):
            # Nothing to remember: the bucket keeps only agents in trouble, so every
            # evaluation reads a handful of records, not one per agent that ever failed. (A
            # count another replica adds between the two writes is lost: one more to go.)
            await self.context.kv.delete(key)
            self.known.pop(agent_id, None)

    async def trial_assigned(self, agent_id: str, task_id: str) -> None:
        """A half-open agent took its trial task: no other task until it is decided."""
        won = False

        def take(current: JsonValue) -> JsonValue:
            nonlocal won
            record, won = breakers.with_trial(current, agent_id, task_id)
            return record

        stored = await self.context.kv.update(bucket_key(BREAKER, agent_id), take)
        if isinstance(stored, dict):
            self.known[agent_id] = stored
            if won:
                await self.context.quarantine(agent_id, quarantine_reason(stored))

    async def refresh(self) -> None:
        """Read every breaker record (other replicas' changes included)."""
        known: dict[str, Record] = {}
        for key in await self.context.kv.keys():
            if key.startswith(BREAKER + "."):
                record = await self.context.kv.get(key)
                if isinstance(record, dict) and isinstance(record.get("agent_id"), str):
                    known[str(record["agent_id"])] = record
        self.known = known

    async def tick(self, now: float) -> None:
        """Half-open what has cooled down, and make each agent match its breaker."""
        for agent_id, record in list(self.known.items()):
            if state_of(record) is State.OPEN:
                change: Change | None = None

                def half_open(current: JsonValue, agent_id: str = agent_id) -> JsonValue:
                    nonlocal change
                    updated, change = breakers.due(current, agent_id, now)
                    return updated

                retry_at = record.get("retry_at")
                if isinstance(retry_at, int | float) and now >= retry_at:
                    stored = await self.context.kv.update(bucket_key(BREAKER, agent_id), half_open)
                    await self._stored(agent_id, stored, change)
                    if change is not None:
                        continue
            agent = self.context.agent(agent_id)
            if agent is not None:
                await self._reconcile(agent, self.known.get(agent_id, record))

    async def _stored(self, agent_id: str, stored: JsonValue, change: Change | None) -> None:
        if not isinstance(stored, dict):
            return
        self.known[agent_id] = stored
        if change is None:
            return
        self.changes += 1
        log.info(
            "circuit breaker changed",
            extra={
                "agent_id": agent_id,
                "from": change.from_state.value,
                "to": change.to_state.value,
                "reason": change.reason,
            },
        )
        fields: dict[str, Any] = {
            "from": change.from_state.value,
            "to": change.to_state.value,
            "agent_id": agent_id,
            "reason": change.reason,
            "retry_at": stored.get("retry_at") if change.to_state is State.OPEN else None,
        }
        self.context.publish("breaker", **fields)
        agent = self.context.agent(agent_id)
        if agent is not None:
            await self._reconcile(agent, stored)

    async def _reconcile(self, agent: AgentView, record: Record) -> None:
        """Quarantine, put on trial or release ``agent`` as its breaker says (idempotent)."""
        ctx, state = self.context, state_of(record)
        ours = agent.quarantined_by == self.name
        try:
            if state is State.CLOSED:
                if ours:
                    await ctx.release(agent.agent_id)
                return
            trial = state is State.HALF_OPEN and record.get("trial_task") is None
            reason = quarantine_reason(record)
            if not ours or agent.on_trial != trial or agent.quarantine_reason != reason:
                await ctx.quarantine(agent.agent_id, reason, trial=trial)
        except Exception as exc:  # the agent left meanwhile: the next evaluation sees it gone
            log.warning(
                "could not apply the breaker", extra={"agent_id": agent.agent_id, "error": str(exc)}
            )

    def report(self) -> dict[str, JsonValue]:
        shown: dict[str, JsonValue] = {}
        for agent_id in sorted(self.known):
            if not self.troubled(agent_id):
                continue
            record = self.known[agent_id]
            shown[agent_id] = {
                k: record.get(k)
                for k in (
                    "state",
                    "failures",
                    "refusals",
                    "timeouts",
                    "reason",
                    "since",
                    "retry_at",
                )
            } | {"trial_task": record.get("trial_task"), "opens": record.get("opens")}
        return shown
