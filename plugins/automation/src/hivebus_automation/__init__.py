"""Failure-streak automation for hivebus.

Counts consecutive failures per agent and per task type; a streak at ``failure_threshold``
turns this plugin's health ``degraded`` (and so the core's) and is listed in its status
contribution. Optionally raises listed task types to ``high`` priority at delegation. The
entry point names the ``AutomationPlugin`` class: each core builds its own instance.
"""

from .plugin import NAME, AutomationPlugin, AutomationSettings
from .streaks import Streaks

__all__ = ["NAME", "AutomationPlugin", "AutomationSettings", "Streaks"]
