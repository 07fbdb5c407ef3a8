"""The context plugin for hivebus: the context window as a resource.

Offers each task first to the candidate with the most free context window; carries payloads
and results too large for a message by reference (the SDK stores them in this plugin's object
store; the plugin removes them after their task ends); keeps session contexts shared by the
tasks of one session (``plugin.context.get|put|append``); and alerts when an agent's context
window runs full. The entry point names the ``ContextPlugin`` class: each core builds its own
instance.
"""

from .plugin import NAME, ContextPlugin
from .selection import Choice, choose, usage
from .settings import ContextSettings, SessionSettings, UsageSettings

__all__ = [
    "NAME",
    "Choice",
    "ContextPlugin",
    "ContextSettings",
    "SessionSettings",
    "UsageSettings",
    "choose",
    "usage",
]
