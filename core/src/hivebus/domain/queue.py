"""The pending queue: tasks nobody could take yet, by priority, then tenant in turn, then age.

Tasks are grouped by their required capability set and their tenant. When an agent frees a
slot the core asks for the best task that agent can serve, which only looks at the head of
each group whose capabilities the agent has: the cost follows the number of distinct
(capability set, tenant) pairs waiting, not the number of waiting tasks.

Within one priority, tenants take turns (start-time fair queuing): each tenant has a virtual
time that moves on by ``1 / weight`` for every task of its that is served, and the head whose
tenant is furthest behind goes first, so ten thousand tasks of one tenant cannot keep another
tenant's one waiting, and a tenant of weight 2 is served twice as often as one of weight 1. A
tenant that had nothing waiting starts level with the others, not ahead by what it did not
use. Tasks without a tenant are one tenant among the others; with none at all, this is
priority then age. The turns are this replica's own: each replica serves the tasks it hands
out in turn.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from .tasks import TaskRecord

__all__ = ["PendingQueue"]

_Entry = tuple[int, int, str]  # (-priority, seq, task_id)
_Group = tuple[frozenset[str], str | None]  # (required capabilities, tenant)


class PendingQueue:
    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self._groups: dict[_Group, list[_Entry]] = {}
        self._queued: dict[str, TaskRecord] = {}
        self._weights = weights or {}
        self._turns: dict[str | None, float] = {}  # tenant -> its virtual time
        self._now = 0.0  # the virtual time of the last task served

    def __len__(self) -> int:
        return len(self._queued)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._queued

    def push(self, task: TaskRecord) -> None:
        self._queued[task.task_id] = task
        priority, seq = task.queue_key
        group = (task.required, task.tenant)
        heapq.heappush(self._groups.setdefault(group, []), (priority, seq, task.task_id))

    def discard(self, task_id: str) -> None:
        """Forget a task; its heap entry is dropped lazily when it reaches the head."""
        self._queued.pop(task_id, None)

    def _head(self, group: _Group) -> _Entry | None:
        heap = self._groups[group]
        while heap:
            entry = heap[0]
            task = self._queued.get(entry[2])
            if (
                task is not None
                and task.queue_key == entry[:2]
                and (task.required, task.tenant) == group
            ):
                return entry
            heapq.heappop(heap)
        del self._groups[group]
        return None

    def _ready_head(self, group: _Group, ready: Callable[[str], bool]) -> _Entry | None:
        """The best entry of a group whose task is ``ready``; the ones passed over stay."""
        passed: list[_Entry] = []
        head = self._head(group)
        while head is not None and not ready(head[2]):
            passed.append(heapq.heappop(self._groups[group]))
            head = self._head(group) if self._groups.get(group) else None
        if passed:
            heap = self._groups.setdefault(group, [])
            for entry in passed:
                heapq.heappush(heap, entry)
        return head

    def _turn(self, tenant: str | None) -> float:
        """Where the tenant stands: its virtual time, or now if it fell behind idle."""
        return max(self._turns.get(tenant, 0.0), self._now)

    def _served(self, tenant: str | None) -> None:
        start = self._turn(tenant)
        self._now = start
        weight = self._weights.get(tenant, 1.0) if tenant is not None else 1.0
        self._turns[tenant] = start + 1.0 / weight

    def pop_for(
        self, capabilities: frozenset[str], ready: Callable[[str], bool] | None = None
    ) -> TaskRecord | None:
        """Remove and return the best waiting task an agent with ``capabilities`` can serve.

        ``ready(task_id)``: whether a task may be offered now; tasks that may not (backing off
        after a refusal) keep their place and do not hold up the ones behind them.
        """
        best: tuple[int, float, int, str] | None = None
        best_group: _Group = (frozenset(), None)
        for group in list(self._groups):
            if not group[0] <= capabilities:
                continue
            head = self._head(group) if ready is None else self._ready_head(group, ready)
            if head is None:
                continue
            key = (head[0], self._turn(group[1]), head[1], head[2])
            if best is None or key < best:
                best, best_group = key, group
        if best is None:
            return None
        heap = self._groups[best_group]
        if heap[0][2] == best[3]:
            heapq.heappop(heap)
        # else tasks passed over sort before it: its entry goes stale and is dropped when it
        # reaches the head, as a discarded task's is
        self._served(best_group[1])
        return self._queued.pop(best[3])

    def __iter__(self) -> Iterator[TaskRecord]:
        """Waiting tasks in the order they would be served."""
        return iter(sorted(self._queued.values(), key=lambda t: t.queue_key))
