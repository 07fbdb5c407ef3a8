"""Plain-text tables and event lines for people; ``--json`` bypasses all of this."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

__all__ = ["event_line", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h).upper() for h in headers]] + [
        ["-" if v is None else str(v) for v in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)


def clock(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def event_line(subject: str, body: Any) -> str:
    """``12:00:01.123 task.assigned task=t1 agent=a1 attempt=1``."""
    if not isinstance(body, dict) or "event" not in body:
        return f"{clock(time.time())} {subject} {body}"
    extra = {k: v for k, v in body.items() if k not in {"event", "timestamp"}}
    parts = [clock(body.get("timestamp")), f"{body['event']:<18}"]
    for key in ("task_id", "agent_id"):
        if extra.get(key) is not None:
            parts.append(f"{key.removesuffix('_id')}={extra.pop(key)}")
        else:
            extra.pop(key, None)
    parts += [f"{k}={v}" for k, v in extra.items()]
    return " ".join(parts)
