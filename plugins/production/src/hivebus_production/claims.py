"""One scaling signal per cooldown, however many replicas run.

Every core replica runs this plugin and may decide the same signal. The signal's record in the
plugin's own bucket says when the last one went; the replica whose compare-and-set write
(``kv.update``) finds the cooldown passed sends it, the others only cool down. (Alerts are the
context's alert book's job: one per cause across replicas, the same way.)
"""

from __future__ import annotations

from dataclasses import dataclass

from hivebus_hookspecs import KeyValueStore, bucket_key
from pydantic import JsonValue

__all__ = ["ScaleClaims"]


def _number(value: JsonValue) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


@dataclass
class ScaleClaims:
    """Who may send the next signal for a capability set: the first past the cooldown."""

    kv: KeyValueStore
    replica: str
    cooldown_s: float

    async def claim(
        self, capabilities: tuple[str, ...], direction: str, now: float
    ) -> tuple[bool, float]:
        """``(True, now)`` if this replica may signal, else ``(False, when the last went)``."""
        won, last = False, now

        def take(current: JsonValue) -> JsonValue:
            nonlocal won, last
            if isinstance(current, dict):
                at = _number(current.get("at"))
                if now - at < self.cooldown_s:
                    won, last = False, at
                    return current
            won, last = True, now
            return {"at": now, "direction": direction, "by": self.replica}

        await self.kv.update(bucket_key("scale", ",".join(capabilities) or "*"), take)
        return won, last
