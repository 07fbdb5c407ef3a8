"""Gates a task passes before it is offered: its concurrency key, its type's rate limit.

Both are limits across every core replica, so both are kept in the shared store, one record
per key or task type, changed with compare-and-set like every other record:

- a concurrency key's record lists its claims (a stamp unique to each claim -> the task). A
  task claims a place before it is stored as offered, keeps it while offered or assigned, and
  gives it back when it leaves its agent. The stamp, stored in the task's record too, makes
  each give-back remove its own claim only: two replicas placing the same task at once hold
  two places for a moment (the loser gives its back), never one for two.
- a rate limit's record lists the times of the assignments in its last period (a sliding
  window, exact: never more than ``count`` in any ``period_s``). An offer takes its place in
  the window whether or not it is accepted, so assignments never pass the rate.

A task that may not pass now stays in the queue, in its place; this replica remembers for a
moment that its key is full or its type's window spent, so the tasks behind it are offered
meanwhile. Tasks with neither pay nothing: no read, no write.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable
from typing import Any, Literal

from .cas import CAS_RETRIES, SKIP, Skip
from .kernel import ACTIVE, Kernel, log
from .ports import Conflict, StateUnavailable
from .tasks import TaskRecord

__all__ = ["Gates"]

LimitChange = Callable[[dict[str, Any] | None], "dict[str, Any] | Literal[Skip.SKIP]"]


def _token(name: str) -> str:
    """A store key token for any string (concurrency keys may hold ``:`` or ``/``)."""
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=") or "_"


def concurrency_key(name: str) -> str:
    return f"concurrency.{_token(name)}"


def rate_key(task_type: str) -> str:
    return f"rate.{_token(task_type)}"


class Gates:
    def __init__(self, kernel: Kernel) -> None:
        self._k = kernel
        # key -> monotonic time until which it is taken as full / its window as spent here
        self._full: dict[str, float] = {}
        self._spent: dict[str, float] = {}
        self._known: dict[str, tuple[dict[str, Any] | None, int]] = {}  # the last read
        self._locks: dict[str, asyncio.Lock] = {}
        self._stale: dict[tuple[str, str], float] = {}  # (key, stamp) -> first seen stale
        self.on_freed: Callable[[], None] = lambda: None
        """Called when a place was given back: waiting tasks may be offered now."""

    def applies(self, task: TaskRecord) -> bool:
        return task.concurrency is not None or task.task_type in self._k.config.rate_limits

    def ready(self, task: TaskRecord) -> bool:
        """Whether the task may try its gates now (not known full or spent a moment ago)."""
        now = self._k.monotonic()
        key = task.concurrency_key
        if key is not None and self._full.get(key, 0.0) > now:
            return False
        return self._spent.get(task.task_type, 0.0) <= now

    async def enter(self, task: TaskRecord) -> str | None:
        """Claim the task's places; the claim's stamp, or ``None`` when it must wait."""
        k = self._k
        stamp = secrets.token_hex(8)  # unique across replicas, whatever their configuration
        limit = task.concurrency
        if limit is not None and not await self._claim(task, stamp):
            self._full[limit["key"]] = k.monotonic() + self._recheck_s
            return None
        rate = k.config.rate_limits.get(task.task_type)
        if rate is not None:
            wait = await self._take_rate(task.task_type, rate.count, rate.period_s)
            if wait is not None:
                self._spent[task.task_type] = k.monotonic() + min(wait, self._recheck_s)
                await self.leave(task, stamp)
                return None
        return stamp

    async def leave(self, task: TaskRecord, stamp: str | None) -> None:
        """Give back the claim with ``stamp`` (a later claim of the same task stays)."""
        if task.concurrency is not None and stamp is not None:
            await self._give_back(task.concurrency["key"], task.task_id, stamp)

    async def _give_back(self, name: str, task_id: str, stamp: str) -> None:
        def give_back(value: dict[str, Any] | None) -> dict[str, Any] | Literal[Skip.SKIP]:
            holders = dict((value or {}).get("holders", {}))
            if stamp not in holders:
                return SKIP
            del holders[stamp]
            return {"holders": holders}

        try:
            given = await self._update(concurrency_key(name), give_back)
        except (Conflict, StateUnavailable) as exc:
            # the repair pass gives it back once the task is seen off its agent
            log.info(
                "concurrency place not given back yet",
                extra={"task_id": task_id, "error": str(exc)},
            )
            return
        if given:  # a second give-back of the same claim frees nothing, and says nothing
            self._full.pop(name, None)
            self.on_freed()

    def left_agent(self, old: TaskRecord | None, new: TaskRecord) -> None:
        """A local write took a task off its agent: give its concurrency place back."""
        if (
            old is not None
            and old.gate is not None
            and old.status in ACTIVE
            and new.status not in ACTIVE
        ):
            self._k.spawn(self.leave(old, old.gate), name=f"hivebus-gate-leave-{old.task_id}")

    @property
    def _recheck_s(self) -> float:
        return max(self._k.config.heartbeat_interval_s / 2, 0.05)

    async def _claim(self, task: TaskRecord, stamp: str) -> bool:
        assert task.concurrency is not None
        limit: int = task.concurrency["limit"]
        task_id = task.task_id

        def take(value: dict[str, Any] | None) -> dict[str, Any] | Literal[Skip.SKIP]:
            holders = dict((value or {}).get("holders", {}))
            if len(holders) >= limit:
                return SKIP
            holders[stamp] = task_id
            return {"holders": holders}

        try:
            return await self._update(concurrency_key(task.concurrency["key"]), take)
        except Conflict:
            return False  # contended: it waits, and is offered at a later pass

    async def _take_rate(self, task_type: str, count: int, period_s: float) -> float | None:
        """Take a place in the type's window: ``None`` when taken, else seconds to wait."""
        now = self._k.clock()
        wait: dict[str, float] = {}

        def take(value: dict[str, Any] | None) -> dict[str, Any] | Literal[Skip.SKIP]:
            times = [t for t in (value or {}).get("times", []) if t > now - period_s]
            if len(times) >= count:
                wait["s"] = times[-count] + period_s - now
                return SKIP
            return {"times": [*times, now]}

        try:
            await self._update(rate_key(task_type), take)
        except Conflict:
            return self._recheck_s
        return wait.get("s")

    async def _update(self, key: str, change: LimitChange) -> bool:
        """Compare-and-set ``change(record)`` on the limit ``key``, re-reading on conflict;
        whether anything was stored (``False``: the change said ``SKIP``).

        One change at a time per key in this replica: a hundred tasks sharing a key would
        otherwise spend their compare-and-sets losing to each other. The last record read is
        tried first: with one replica the read is rarely needed."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            return await self._update_now(key, change)

    async def _update_now(self, key: str, change: LimitChange) -> bool:
        state = self._k.state
        for _ in range(CAS_RETRIES):
            known = self._known.get(key)
            fresh = known is None
            if known is None:
                known = self._known[key] = await state.load_limit(key)
            value, revision = known
            changed = change(value)
            if changed is SKIP:
                if fresh:
                    return False
                del self._known[key]  # decided on an old read: decide again on a fresh one
                continue
            try:
                self._known[key] = (changed, await state.save_limit(key, changed, revision))
                return True
            except Conflict:
                self._known.pop(key, None)
        raise Conflict(key)

    async def repair(self) -> None:
        """Give back places held by tasks that are not on an agent any more (a crash between
        a task leaving its agent and its place being given back), after a grace period."""
        k = self._k
        # Only the keys live tasks use: a place leaked on a key no live task wants harms
        # nobody, and is found as soon as a task with that key waits again.
        tasks = k.cache.tasks
        live = (tasks.get(task_id) for task_id in k.cache.live)
        keys = {t.concurrency["key"] for t in live if t is not None and t.concurrency}
        for gone in [name for name in self._full if name not in keys]:
            del self._full[gone]
        wanted = {concurrency_key(name) for name in keys}
        for key, lock in list(self._locks.items()):
            if key.startswith("concurrency.") and key not in wanted and not lock.locked():
                del self._locks[key]  # forgotten while idle: memory follows the live keys
                self._known.pop(key, None)
        now = k.monotonic()
        grace = k.config.heartbeat_interval_s * 2
        seen: dict[tuple[str, str], float] = {}
        for name in keys:
            value, _ = await k.state.load_limit(concurrency_key(name))
            for stamp, task_id in (value or {}).get("holders", {}).items():
                task = k.cache.tasks.get(task_id)
                if task is not None and task.status in ACTIVE and task.gate == stamp:
                    continue
                first = seen[(name, stamp)] = self._stale.get((name, stamp), now)
                if now - first > grace:
                    log.warning(
                        "giving back a stale concurrency place",
                        extra={"task_id": task_id, "key": name},
                    )
                    self._known.pop(concurrency_key(name), None)
                    await self._give_back(name, task_id, stamp)
        self._stale = seen
