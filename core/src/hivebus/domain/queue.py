"""The pending queue: tasks nobody could take yet, by priority then age.

Tasks are grouped by their required capability set. When an agent frees a slot the core asks
for the best task that agent can serve, which only looks at the head of each group whose
capabilities the agent has: the cost follows the number of distinct capability sets waiting,
not the number of waiting tasks.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from .tasks import TaskRecord

__all__ = ["PendingQueue"]

_Entry = tuple[int, int, str]  # (-priority, seq, task_id)


class PendingQueue:
    def __init__(self) -> None:
        self._groups: dict[frozenset[str], list[_Entry]] = {}
        self._queued: dict[str, TaskRecord] = {}

    def __len__(self) -> int:
        return len(self._queued)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._queued

    def push(self, task: TaskRecord) -> None:
        self._queued[task.task_id] = task
        priority, seq = task.queue_key
        heapq.heappush(self._groups.setdefault(task.required, []), (priority, seq, task.task_id))

    def discard(self, task_id: str) -> None:
        """Forget a task; its heap entry is dropped lazily when it reaches the head."""
        self._queued.pop(task_id, None)

    def _head(self, required: frozenset[str]) -> _Entry | None:
        heap = self._groups[required]
        while heap:
            entry = heap[0]
            task = self._queued.get(entry[2])
            if task is not None and (task.queue_key == entry[:2]) and task.required == required:
                return entry
            heapq.heappop(heap)
        del self._groups[required]
        return None

    def _ready_head(self, required: frozenset[str], ready: Callable[[str], bool]) -> _Entry | None:
        """The best entry of a group whose task is ``ready``; the ones passed over stay."""
        passed: list[_Entry] = []
        head = self._head(required)
        while head is not None and not ready(head[2]):
            passed.append(heapq.heappop(self._groups[required]))
            head = self._head(required) if self._groups.get(required) else None
        if passed:
            heap = self._groups.setdefault(required, [])
            for entry in passed:
                heapq.heappush(heap, entry)
        return head

    def pop_for(
        self, capabilities: frozenset[str], ready: Callable[[str], bool] | None = None
    ) -> TaskRecord | None:
        """Remove and return the best waiting task an agent with ``capabilities`` can serve.

        ``ready(task_id)``: whether a task may be offered now; tasks that may not (backing off
        after a refusal) keep their place and do not hold up the ones behind them.
        """
        best: _Entry | None = None
        best_group: frozenset[str] = frozenset()
        for required in list(self._groups):
            if not required <= capabilities:
                continue
            head = self._head(required) if ready is None else self._ready_head(required, ready)
            if head is not None and (best is None or head < best):
                best, best_group = head, required
        if best is None:
            return None
        heap = self._groups[best_group]
        if heap[0] == best:
            heapq.heappop(heap)
        # else tasks passed over sort before it: its entry goes stale and is dropped when it
        # reaches the head, as a discarded task's is
        return self._queued.pop(best[2])

    def __iter__(self) -> Iterator[TaskRecord]:
        """Waiting tasks in the order they would be served."""
        return iter(sorted(self._queued.values(), key=lambda t: t.queue_key))
