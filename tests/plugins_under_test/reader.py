"""A plugin that only keeps its context, so a test can read the registry through it as any
plugin would: readings (``capacity``, ``agent_counts``, ``context_usage``, ``roster``) and
views (``agents``) of the same moment."""

from __future__ import annotations

from hivebus_hookspecs import PluginContext, hookimpl


class Reader:
    def __init__(self) -> None:
        self.context: PluginContext | None = None

    @hookimpl
    def hivebus_startup(self, context: PluginContext) -> None:
        self.context = context
