"""Context-window-aware agent selection for hivebus.

Agents report ``context_window_usage`` (0.0-1.0) in their heartbeats; this plugin offers each
task first to the candidate with the lowest usage, skipping those above ``max_context_usage``
unless all are. The entry point names the ``ContextPlugin`` class: each core builds its own
instance.
"""

from .plugin import NAME, ContextPlugin, ContextSettings
from .selection import Choice, choose, usage

__all__ = ["NAME", "Choice", "ContextPlugin", "ContextSettings", "choose", "usage"]
