"""The context plugin: selection by free context window, references, sessions, usage alerts.

Hooks stay cheap (selection is a pure function over the candidates; the hint sizes a payload
the core already bounded). Everything that touches storage runs in endpoints (sessions) or in
timers the host owns (removing stored objects, expiring sessions, checking usage).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from hivebus_hookspecs import (
    AgentView,
    PluginContext,
    TaskAmendment,
    TaskView,
    hookimpl,
)
from hivebus_hookspecs.models.references import as_reference
from pydantic import JsonValue

from .retention import Retention
from .selection import choose
from .sessions import Sessions
from .settings import ContextSettings
from .usage import UsageMonitor

__all__ = ["NAME", "ContextPlugin"]

NAME = "context"
CHARS_PER_TOKEN = 4
"""The usual rough ratio for English text and JSON; a hint, not a tokenizer."""

log = logging.getLogger("hivebus.context")


class ContextPlugin:
    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.time
        """Wall-clock time, as the core stamps tasks; a test may replace it."""
        self.settings = ContextSettings()
        self.selections = 0
        self.reordered = 0
        self.saturated = 0
        self.hints = 0
        self.retention: Retention | None = None
        self.sessions: Sessions | None = None
        self.usage: UsageMonitor | None = None
        self.error: str | None = None
        """Why the plugin is not running (its settings), if it is not."""

    @hookimpl
    async def hivebus_startup(self, context: PluginContext) -> None:
        self.error = None
        try:
            self.settings = settings = context.settings(ContextSettings)
        except ValueError as exc:
            # Nothing runs on settings the operator did not mean; the host records the
            # reason (``hivebus plugins``) and the plugin stays unhealthy until fixed.
            self.error = str(exc)
            raise
        self.selections = self.reordered = self.saturated = self.hints = 0
        self.retention = Retention(context, settings, lambda: self.clock())
        self.sessions = Sessions(context.kv, settings.sessions, lambda: self.clock())
        book = context.alert_book(
            stale_after_s=max(60.0, 3 * settings.usage.interval_s),
            cooldown_s=settings.usage.cooldown_s,
        )
        self.usage = UsageMonitor(context, book, settings.usage.warning, settings.usage.critical)
        for endpoint, handler in (
            ("get", self.sessions.get),
            ("put", self.sessions.put),
            ("append", self.sessions.append),
        ):
            await context.serve(endpoint, handler)
        # Clients find the object store by its name, so it must exist before the first
        # sweep: open it at once, in a timer (opening may outlast a start-up hook).
        context.at(self.clock(), self.retention.sweep, name="open-stores")
        context.every(settings.sweep_interval_s, self.retention.sweep, name="remove-objects")
        context.every(settings.sessions.sweep_interval_s, self.sessions.expire, name="sessions")
        context.every(settings.usage.interval_s, self.usage.check, name="usage")

    @hookimpl
    def hivebus_select_agent(self, candidates: list[AgentView]) -> str | None:
        choice = choose(candidates, self.settings.max_context_usage)
        if choice is None:
            return None
        self.selections += 1
        if choice.agent is not candidates[0]:
            self.reordered += 1
        if choice.saturated:
            self.saturated += 1
        return choice.agent.agent_id

    @hookimpl
    def hivebus_task_delegate(self, task: TaskView) -> TaskAmendment | None:
        if not self.settings.context_hint or "context_hint" in task.metadata:
            return None  # off by default; never overwrite a hint the delegator gave
        try:
            ref = as_reference(task.payload)
        except ValueError:
            ref = None
        if ref is not None:
            chars = ref.size  # the payload the agent will read, not its reference
        else:
            # Sized as compact JSON, which is what the agent receives; bounded by the core's
            # max_payload_bytes, so cheap enough to do inline.
            chars = len(json.dumps(task.payload, separators=(",", ":"), ensure_ascii=False))
        self.hints += 1
        hint: dict[str, JsonValue] = {
            "payload_chars": chars,
            "approx_tokens": math.ceil(chars / CHARS_PER_TOKEN),
        }
        return {"metadata": {"context_hint": hint}}

    @hookimpl
    def hivebus_health(self) -> str:
        return "unhealthy" if self.error else "healthy"

    @hookimpl
    def hivebus_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "error": self.error,
            "max_context_usage": self.settings.max_context_usage,
            "selections": self.selections,
            "reordered": self.reordered,
            "saturated": self.saturated,
            "hints_added": self.hints,
            "offload_above_bytes": self.settings.offload_above_bytes,
        }
        if self.retention is not None:
            status["objects"] = {
                "stored": self.retention.stored,
                "removed": self.retention.removed,
            }
        if self.sessions is not None:
            status["sessions"] = {
                "fragments_added": self.sessions.appended,
                "fragments_dropped": self.sessions.dropped,
                "expired": self.sessions.expired,
            }
        if self.usage is not None:
            status["usage"] = self.usage.status()
        return status
