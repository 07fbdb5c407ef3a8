"""A plugin that acts through its context alone: it serves ``plugin.medic.ping``, counts
failures in its bucket, retries a failed task once after a pause, and benches an agent that
keeps failing (quarantine, a sleep control message, an alert)."""

from __future__ import annotations

from typing import Any

from hivebus_hookspecs import PluginContext, TaskView, hookimpl
from pydantic import BaseModel


class Settings(BaseModel):
    retry_after_s: float = 1.0
    bench_after: int = 2


class Medic:
    def __init__(self) -> None:
        self.context: PluginContext | None = None
        self.settings = Settings()

    @hookimpl
    async def hivebus_startup(self, context: PluginContext) -> None:
        self.context = context
        self.settings = context.settings(Settings)
        await context.serve("ping", self.ping)

    async def ping(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.context is not None
        return {
            "pong": request.get("say", "pong"),
            "failures": await self.context.kv.get("failures") or 0,
        }

    @hookimpl
    async def hivebus_task_failed(self, task: TaskView) -> None:
        ctx = self.context
        assert ctx is not None
        failures = await ctx.kv.update("failures", lambda n: (n or 0) + 1)
        ctx.publish("counted", task_id=task.task_id, failures=failures)
        if task.task_type == "retry-me" and not task.metadata.get("no_retry"):
            first = await ctx.kv.update(f"retried.{task.task_id}", lambda n: (n or 0) + 1)
            if first == 1:
                await ctx.retry(task.task_id, delay_s=self.settings.retry_after_s, reason="once")
        agent_id = task.agent_id
        if agent_id is None:
            return
        streak = await ctx.kv.update(f"streak.{agent_id}", lambda n: (n or 0) + 1)
        if streak == self.settings.bench_after:
            await ctx.quarantine(agent_id, f"{streak} failures")
            await ctx.control(agent_id, "sleep", "benched by medic")
            ctx.alert(
                "warning",
                f"agent {agent_id} benched after {streak} failures",
                fingerprint=f"medic-bench-{agent_id}",
                details={"streak": streak},
            )
