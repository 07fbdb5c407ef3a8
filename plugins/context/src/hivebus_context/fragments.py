"""A session's context as fragments, and the compaction that keeps it within its budget.

Pure functions on plain JSON (the value stored in the bucket), so the compare-and-set loop
can run them again on a newer value when another replica wrote first.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from pydantic import JsonValue

__all__ = ["OverBudget", "add", "compact", "fresh", "size_of", "summary"]


class OverBudget(ValueError):
    """What must be kept (pinned fragments, or one fragment alone) exceeds the budget."""


def size_of(content: JsonValue) -> int:
    """A fragment's size: bytes of its compact JSON, what the budget counts."""
    return len(pydantic_core.to_json(content))


def fresh(session_id: str, now: float) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "fragments": [],
        "bytes": 0,
        "next_id": 1,
        "created_at": now,
        "updated_at": now,
        "compacted": {"fragments": 0, "bytes": 0},
    }


def add(session: dict[str, Any], items: list[tuple[JsonValue, bool]], now: float) -> list[int]:
    """Append ``(content, pinned)`` fragments in order; returns their ids."""
    ids = []
    for content, pinned in items:
        fragment_id = int(session["next_id"])
        session["next_id"] = fragment_id + 1
        size = size_of(content)
        session["fragments"].append(
            {"id": fragment_id, "content": content, "pinned": pinned, "bytes": size, "at": now}
        )
        session["bytes"] += size
        ids.append(fragment_id)
    session["updated_at"] = now
    return ids


def compact(session: dict[str, Any], budget: int) -> list[dict[str, Any]]:
    """Drop the oldest unpinned fragments until the session fits ``budget``; returns what was
    dropped (``id``, ``bytes``, ``at``). Raises ``OverBudget`` when pinned ones alone exceed it.
    """
    dropped: list[dict[str, Any]] = []
    if session["bytes"] <= budget:
        return dropped
    pinned = sum(f["bytes"] for f in session["fragments"] if f["pinned"])
    if pinned > budget:
        raise OverBudget(f"pinned fragments need {pinned} bytes, the budget is {budget}")
    kept = []
    for fragment in session["fragments"]:  # oldest first
        if session["bytes"] > budget and not fragment["pinned"]:
            session["bytes"] -= fragment["bytes"]
            dropped.append({k: fragment[k] for k in ("id", "bytes", "at")})
        else:
            kept.append(fragment)
    session["fragments"] = kept
    session["compacted"] = {
        "fragments": session["compacted"]["fragments"] + len(dropped),
        "bytes": session["compacted"]["bytes"] + sum(d["bytes"] for d in dropped),
    }
    return dropped


def summary(session: dict[str, Any], budget: int) -> dict[str, Any]:
    """The session without its contents: what a put or append answers."""
    return {
        "session_id": session["session_id"],
        "fragments": len(session["fragments"]),
        "bytes": session["bytes"],
        "budget_bytes": budget,
        "updated_at": session["updated_at"],
        "compacted": session["compacted"],
    }
