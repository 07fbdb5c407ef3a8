"""One alert per cause and one scaling signal per cooldown, however many replicas run.

Every core replica runs this plugin and sees the transitions it made, so several may see the
same breach. The cause's record in the plugin's own bucket lists the replicas that see it,
each with when it last confirmed so; every change is a compare-and-set (``kv.update``). The
replica whose write turns the record from "not firing" to "firing" publishes the alert; the
others only add themselves. A replica that no longer sees the cause takes itself off; the one
that leaves the list empty publishes ``resolved``. A replica that stopped confirming for
``stale_after_s`` (it went away) is dropped by the next writer. So the alert fires once while
any replica sees the cause, and resolves once when none does. Scaling signals are claimed
the same way, so the cooldown holds across replicas too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from hivebus_hookspecs import KeyValueStore, PluginContext
from pydantic import JsonValue

__all__ = ["AlertBook", "ScaleClaims", "bucket_key"]


def bucket_key(prefix: str, name: str) -> str:
    """A valid, collision-free key for any name: readable part plus a short hash."""
    readable = re.sub(r"[^-\w]", "_", name)[:64]
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:10]
    return f"{prefix}.{readable}.{digest}"


def _number(value: JsonValue) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _firing(record: Any) -> bool:
    return isinstance(record, dict) and record.get("status") == "firing"


@dataclass
class AlertBook:
    context: PluginContext
    replica: str
    stale_after_s: float
    known: dict[str, dict[str, JsonValue]] = field(default_factory=dict)
    """The records of alerts firing that this replica has touched, by fingerprint."""
    fired: int = 0
    resolved: int = 0

    @property
    def kv(self) -> KeyValueStore:
        return self.context.kv

    async def recall(self) -> None:
        """After a restart: pick up the alerts still firing, so they get resolved."""
        for key in await self.kv.keys():
            if key.startswith("alert."):
                record = await self.kv.get(key)
                if _firing(record) and isinstance(record, dict):
                    self.known[str(record["fingerprint"])] = record

    def _fresh(self, record: dict[str, JsonValue], now: float) -> dict[str, JsonValue]:
        seen = record.get("seen_by")
        seen = seen if isinstance(seen, dict) else {}
        return {r: at for r, at in seen.items() if now - _number(at) <= self.stale_after_s}

    async def fire(
        self,
        fingerprint: str,
        severity: str,
        summary: str,
        details: dict[str, JsonValue],
        now: float,
    ) -> bool:
        """Say this replica sees the cause; publish the alert if it was not firing yet."""
        won = False

        def see(current: JsonValue) -> JsonValue:
            nonlocal won
            won = not (_firing(current) and isinstance(current, dict))
            if isinstance(current, dict) and not won:
                seen = {**self._fresh(current, now), self.replica: now}
                return {**current, "seen_by": seen}
            return {
                "fingerprint": fingerprint,
                "status": "firing",
                "severity": severity,
                "summary": summary,
                "since": now,
                "seen_by": {self.replica: now},
            }

        stored = await self.kv.update(bucket_key("alert", fingerprint), see)
        if isinstance(stored, dict):
            self.known[fingerprint] = stored
        if won:
            self.context.alert(severity, summary, fingerprint=fingerprint, details=details)
            self.fired += 1
        return won

    async def resolve(self, fingerprint: str, now: float) -> bool:
        """Say this replica no longer sees the cause; publish ``resolved`` if none does."""
        won = False

        def unsee(current: JsonValue) -> JsonValue:
            nonlocal won
            won = False
            if not (_firing(current) and isinstance(current, dict)):
                return current
            seen = self._fresh(current, now)
            seen.pop(self.replica, None)
            if seen:
                return {**current, "seen_by": seen}
            won = True
            return {**current, "status": "resolved", "seen_by": {}, "resolved_at": now}

        stored = await self.kv.update(bucket_key("alert", fingerprint), unsee)
        if not _firing(stored):
            self.known.pop(fingerprint, None)
        if won and isinstance(stored, dict):
            self.context.alert(
                str(stored.get("severity") or "warning"),
                f"resolved: {stored.get('summary')}",
                fingerprint=fingerprint,
                details={"firing_since": stored.get("since"), "resolved_at": now},
                resolved=True,
            )
            self.resolved += 1
        return won


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
