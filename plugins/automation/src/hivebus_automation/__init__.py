"""Circuit breakers, recovery tiers, and sleep and wake for hivebus agents.

An agent that keeps failing, refusing or ignoring offers is quarantined by its circuit breaker
and readmitted after a successful trial task; a failed task is retried, retried after its
agent rests, or declared dead with a critical alert, by how bad its error is; idle or full
agents are put to sleep and woken for work. State lives in the plugin's bucket, so every core
replica agrees. The entry point names the ``AutomationPlugin`` class: each core builds its own
instance.
"""

from .plugin import NAME, AutomationPlugin
from .settings import AutomationSettings, BreakerSettings, RecoverySettings, SleepSettings
from .streaks import Streaks

__all__ = [
    "NAME",
    "AutomationPlugin",
    "AutomationSettings",
    "BreakerSettings",
    "RecoverySettings",
    "SleepSettings",
    "Streaks",
]
