"""Putting agents to sleep and waking them, once across replicas, through the context.

Each evaluation: wake the sleepers whose time is up and those queued work needs; then, when
sleep is enabled, put to sleep the agents idle past ``idle_after_s`` or running full
(``context_usage_above``). An assisted recovery puts an agent to sleep here too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from hivebus_hookspecs import PluginContext, TaskStatus, bucket_key
from pydantic import JsonValue

from . import sleeping
from .keys import SLEEP
from .settings import SleepSettings
from .sleeping import IdleClock, Seen, in_rotation, needing_wake

__all__ = ["Sleepers"]

log = logging.getLogger("hivebus.automation")

MAX_QUEUED_SCANNED = 1000
"""Queued tasks looked at for wake-ups per evaluation (the newest, as the context lists them)."""


class Sleepers:
    def __init__(self, context: PluginContext, settings: SleepSettings) -> None:
        self.context = context
        self.settings = settings
        self.idle = IdleClock()
        self.slept = 0
        self.woken = 0
        self.asleep: dict[str, JsonValue] = {}
        """This replica's view of the plugin's sleepers, for the status."""

    async def sleep(self, agent_id: str, reason: str, now: float) -> bool:
        """Put the agent to sleep unless it sleeps already; True when this replica did."""
        won = False
        last_busy = self.idle.last_busy.get(agent_id)

        def doze(current: JsonValue) -> JsonValue:
            nonlocal won
            record, won = sleeping.asleep(current, agent_id, now, self.settings, reason, last_busy)
            return record

        stored = await self.context.kv.update(bucket_key(SLEEP, agent_id), doze)
        if not won and isinstance(stored, dict) and stored.get("asleep") is True:
            # Asleep in our record, awake in the core's: a replica stopped between the two.
            await self.context.sleep(agent_id, str(stored.get("reason") or reason))
            self.asleep[agent_id] = stored
        if won:
            await self.context.sleep(agent_id, reason)
            self.slept += 1
            self.asleep[agent_id] = stored
            log.info("agent put to sleep", extra={"agent_id": agent_id, "reason": reason})
        return won

    async def wake(self, agent_id: str, reason: str, now: float) -> bool:
        won = False

        def rouse(current: JsonValue) -> JsonValue:
            nonlocal won
            record, won = sleeping.awake(current, now, reason)
            return record

        await self.context.kv.update(bucket_key(SLEEP, agent_id), rouse)
        agent = self.context.agent(agent_id)
        # Woken by us, or left asleep by a replica that stopped between its write and its wake.
        if won or (agent is not None and agent.sleeping):
            await self.context.wake(agent_id, reason)
            if won:
                self.woken += 1
                log.info("agent woken", extra={"agent_id": agent_id, "reason": reason})
        self.asleep.pop(agent_id, None)
        return won

    async def tick(self, now: float, agents: Sequence[Seen]) -> None:
        self.idle.sample(agents, now)
        woken: set[str] = set()
        self.asleep = {}
        for agent in agents:
            if not agent.sleeping:
                continue
            record = await self.context.kv.get(bucket_key(SLEEP, agent.agent_id))
            if not isinstance(record, dict):
                continue  # not ours to wake: someone else put it to sleep
            self.asleep[agent.agent_id] = record
            if sleeping.due(record, now) or record.get("asleep") is not True:
                await self.wake(agent.agent_id, "sleep time over", now)
                woken.add(agent.agent_id)
        if self.settings.wake_for_work and any(a.sleeping for a in agents):
            queued = self.context.tasks(TaskStatus.QUEUED, limit=MAX_QUEUED_SCANNED)
            queued.sort(key=lambda t: (-int(t.priority), t.created_at))  # the queue's order
            ours = [a for a in agents if not a.sleeping or a.agent_id in self.asleep]
            for agent_id, task_id in needing_wake(queued, ours):
                if agent_id not in woken:
                    await self.wake(agent_id, f"queued task {task_id} needs it", now)
                    woken.add(agent_id)
        if self.settings.enabled:
            await self._doze(now, agents, woken)

    async def _doze(self, now: float, agents: Sequence[Seen], woken: set[str]) -> None:
        s = self.settings
        for agent in agents:
            if agent.sleeping or agent.agent_id in woken or not in_rotation(agent):
                continue
            usage = agent.context_window_usage
            full = s.context_usage_above
            if full is not None and usage is not None and usage >= full:
                await self.sleep(agent.agent_id, f"context window {usage:.0%} full", now)
                continue
            idle = self.idle.idle_for(agent.agent_id, now)
            if s.idle_after_s is not None and not agent.active_tasks and idle >= s.idle_after_s:
                await self.sleep(agent.agent_id, f"idle for {idle:.0f}s", now)

    def report(self) -> dict[str, JsonValue]:
        return {
            "sleeping": {
                agent_id: {k: record.get(k) for k in ("since", "wake_at", "sleeps", "reason")}
                for agent_id, record in sorted(self.asleep.items())
                if isinstance(record, dict)
            },
            "slept": self.slept,
            "woken": self.woken,
        }
