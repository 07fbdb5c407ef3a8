"""What the hooks saw, waiting for the next evaluation: appended in constant time, bounded."""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from .breakers import Outcome

__all__ = ["Inbox", "Seen"]


class Seen(NamedTuple):
    """One outcome a hook saw. A named tuple: a hook builds one per assignment and completion,
    and a frozen dataclass costs three times as much to build."""

    outcome: Outcome
    agent_id: str
    task_id: str
    detail: str | None = None
    """The error of a failure, the reason of a refusal."""
    status: str | None = None
    """A failure's task status: ``failed``, ``dead`` or ``retrying``."""
    core_retries: bool = False
    """The task has a retry policy of its own: the core retries it, not this plugin."""
    attempts: int = 0


class Inbox:
    """Oldest dropped first past ``limit``: a stalled evaluation cannot grow memory."""

    def __init__(self, limit: int) -> None:
        self._items: deque[Seen] = deque(maxlen=limit)
        self.dropped = 0

    def put(self, seen: Seen) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(seen)

    def take(self) -> list[Seen]:
        items = list(self._items)
        self._items.clear()
        return items

    def __len__(self) -> int:
        return len(self._items)
