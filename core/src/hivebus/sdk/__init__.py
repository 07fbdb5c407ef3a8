"""The client side of the wire contract: agents (``Agent``) and delegators (``HiveClient``).

One implementation of the agent-side protocol, used by the SDK's ``Agent`` and by the legacy
facade; ``request.call`` is the one request/reply helper of every client.
"""

from .agent import Agent, PermanentFailure, TaskHandler
from .client import HiveClient
from .references import ReferenceUnavailable
from .running import RunningTask, current_task, report_progress
from .updates import TaskUpdate

__all__ = [
    "Agent",
    "HiveClient",
    "PermanentFailure",
    "ReferenceUnavailable",
    "RunningTask",
    "TaskHandler",
    "TaskUpdate",
    "current_task",
    "report_progress",
]
