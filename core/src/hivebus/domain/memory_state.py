"""The state port in memory: one process, no durability, the same compare-and-set rules.

It keeps references to the records the orchestrator caches (no copies), so it costs a dict
entry per record; revisions come from one counter, like a stream sequence.
"""

from __future__ import annotations

from typing import Any

from .ports import Conflict
from .registry import AgentRecord
from .tasks import TaskRecord

__all__ = ["MemoryState"]


class MemoryState:
    def __init__(self, max_seats: int | None = None) -> None:
        self._agents: dict[str, AgentRecord] = {}
        self._tasks: dict[str, TaskRecord] = {}
        self._sequence = 0
        self._seats: set[str] = set()
        self._max_seats = max_seats
        self._limits: dict[str, tuple[dict[str, Any], int]] = {}

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    async def save_agent(self, agent: AgentRecord) -> int:
        stored = self._agents.get(agent.agent_id)
        if (stored.revision if stored else 0) != agent.revision:
            raise Conflict(agent.agent_id)
        agent.revision = self._next()
        self._agents[agent.agent_id] = agent
        return agent.revision

    async def delete_agent(self, agent: AgentRecord) -> None:
        stored = self._agents.get(agent.agent_id)
        if stored is None or stored.revision != agent.revision:
            raise Conflict(agent.agent_id)
        del self._agents[agent.agent_id]

    async def load_agent(self, agent_id: str) -> AgentRecord | None:
        return self._agents.get(agent_id)

    async def save_task(self, task: TaskRecord) -> int:
        stored = self._tasks.get(task.task_id)
        if (stored.revision if stored else 0) != task.revision:
            raise Conflict(task.task_id)
        task.revision = self._next()
        self._tasks[task.task_id] = task
        return task.revision

    async def load_task(self, task_id: str) -> TaskRecord | None:
        return self._tasks.get(task_id)

    async def forget_task(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)

    async def claim_seat(self, agent_id: str) -> bool:
        if agent_id not in self._seats:
            if self._max_seats is not None and len(self._seats) >= self._max_seats:
                return False
            self._seats.add(agent_id)
        return True

    async def release_seat(self, agent_id: str) -> None:
        self._seats.discard(agent_id)

    async def seat_holders(self) -> set[str]:
        return set(self._seats)

    async def load_limit(self, key: str) -> tuple[dict[str, Any] | None, int]:
        return self._limits.get(key, (None, 0))

    async def save_limit(self, key: str, value: dict[str, Any], revision: int) -> int:
        if self._limits.get(key, (None, 0))[1] != revision:
            raise Conflict(key)
        self._limits[key] = (value, self._next())
        return self._limits[key][1]
