"""Pages of views that always fit in one NATS message.

A list reply is cut at ``limit`` items or at the byte budget, whichever comes first, and says
where to go on (``next_cursor``). One view always fits: every stored record does, by the
core's record budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from pydantic import BaseModel

__all__ = ["ENVELOPE_BYTES", "page"]

V = TypeVar("V", bound=BaseModel)

ENVELOPE_BYTES = 1024
"""Room for the reply around its items: ``{"ok":true,"agents":[...],"next_cursor":...}``."""


def page(
    items: Iterable[V], limit: int, budget: int, cursor_of: Callable[[V, int], str]
) -> tuple[list[V], str | None]:
    """Up to ``limit`` items whose JSON adds up to at most ``budget`` bytes, and the cursor
    of the item after the last one taken (``cursor_of(last_item, items_taken)``) when more
    follow."""
    taken: list[V] = []
    used = ENVELOPE_BYTES
    for item in items:
        size = len(item.__pydantic_serializer__.to_json(item)) + 1
        if len(taken) >= limit or (taken and used + size > budget):
            return taken, cursor_of(taken[-1], len(taken))
        taken.append(item)
        used += size
    return taken, None
