"""One alert per cause and one scaling signal per cooldown, however many replicas run.

Every core replica runs this plugin and may see the same breach. Before announcing, a replica
claims the cause in the plugin's own bucket with a compare-and-set (``kv.update``): the replica
whose write turns the record from "not firing" to "firing" publishes; the others see it firing
and stay quiet. The owner confirms the record at each evaluation; it alone resolves it, unless
it stopped confirming for ``stale_after_s`` (it went away), when any replica may. Scaling
signals are claimed the same way, so the cooldown holds across replicas too.
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
    """Fingerprints this replica saw firing (its own or another's), with how to resolve."""
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

    async def fire(
        self,
        fingerprint: str,
        severity: str,
        summary: str,
        details: dict[str, JsonValue],
        now: float,
    ) -> bool:
        """Claim and publish the alert, unless it is already firing; True if published."""
        won = False
        record: dict[str, JsonValue] = {
            "fingerprint": fingerprint,
            "status": "firing",
            "severity": severity,
            "summary": summary,
            "owner": self.replica,
            "since": now,
            "confirmed": now,
        }

        def claim(current: JsonValue) -> JsonValue:
            nonlocal won
            won = False
            if _firing(current) and isinstance(current, dict):
                mine = current.get("owner") == self.replica
                stale = now - _number(current.get("confirmed")) > self.stale_after_s
                if mine or stale:  # confirm it, or take over from a replica that went away
                    return {**current, "owner": self.replica, "confirmed": now}
                return current
            won = True
            return record

        stored = await self.kv.update(bucket_key("alert", fingerprint), claim)
        if isinstance(stored, dict):
            self.known[fingerprint] = stored
        if won:
            self.context.alert(severity, summary, fingerprint=fingerprint, details=details)
            self.fired += 1
        return won

    async def resolve(self, fingerprint: str, now: float) -> bool:
        """Resolve a known firing alert if this replica may; True if published."""
        won = False

        def release(current: JsonValue) -> JsonValue:
            nonlocal won
            won = False
            if not (_firing(current) and isinstance(current, dict)):
                return current
            stale = now - _number(current.get("confirmed")) > self.stale_after_s
            if current.get("owner") != self.replica and not stale:
                return current
            won = True
            return {**current, "status": "resolved", "resolved_at": now, "owner": self.replica}

        stored = await self.kv.update(bucket_key("alert", fingerprint), release)
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
