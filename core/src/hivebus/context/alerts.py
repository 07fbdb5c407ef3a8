"""One alert per cause, however many core replicas see it: the plugin context's alert book.

Every replica runs every plugin and may see the same breach. A cause's record in the plugin's
own bucket (key ``alert.<readable>.<hash>``) lists the replicas that see it, each with when it
last confirmed so; every change is a compare-and-set (``kv.update``). The replica whose write
turns the record from "not firing" to "firing" publishes the alert; the others only add
themselves. A replica that no longer sees the cause takes itself off; the one that leaves the
list empty publishes ``resolved``. A replica that stopped confirming for ``stale_after_s`` (it
went away) is dropped by the next writer. So an alert fires once while any replica sees the
cause, and resolves once when none does. After a resolution, the same cause does not fire
again for ``cooldown_s``: a figure that flaps around its threshold makes one alert, not one per
evaluation. Level-triggered on purpose: a caller states what it sees on every evaluation, so a
replica that restarts, or a lost write, is mended by the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from hivebus_hookspecs.context import KeyValueStore, bucket_key
from hivebus_hookspecs.models import Alert, AlertSeverity
from pydantic import JsonValue

__all__ = ["CoreAlertBook"]


class _Announcer(Protocol):
    def alert(
        self,
        severity: AlertSeverity | str,
        summary: str,
        *,
        fingerprint: str,
        details: Mapping[str, Any] | None = None,
        resolved: bool = False,
    ) -> Alert: ...


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _firing(record: object) -> bool:
    return isinstance(record, dict) and record.get("status") == "firing"


class CoreAlertBook:
    def __init__(
        self,
        kv: KeyValueStore,
        announcer: _Announcer,
        replica: str,
        *,
        stale_after_s: float,
        cooldown_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kv = kv
        self.replica = replica
        self.stale_after_s = stale_after_s
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._announcer = announcer
        self._known: dict[str, dict[str, JsonValue]] = {}
        self._recalled = False

    def firing(self) -> list[str]:
        """Fingerprints this replica knows to be firing (its own and, after a restart, those
        it found in the bucket)."""
        return sorted(self._known)

    async def recall(self) -> None:
        """Pick up the causes still firing in the bucket (after a restart), once."""
        if self._recalled:
            return
        self._recalled = True
        for key in await self.kv.keys():
            if key.startswith("alert."):
                record = await self.kv.get(key)
                if _firing(record) and isinstance(record, dict):
                    self._known[str(record["fingerprint"])] = record

    def _fresh(self, record: dict[str, JsonValue], now: float) -> dict[str, JsonValue]:
        seen = record.get("seen_by")
        seen = seen if isinstance(seen, dict) else {}
        return {r: at for r, at in seen.items() if now - _number(at) <= self.stale_after_s}

    async def fire(
        self,
        severity: AlertSeverity | str,
        summary: str,
        *,
        fingerprint: str,
        details: Mapping[str, JsonValue] | None = None,
    ) -> bool:
        """Say this replica sees the cause now; publish the alert if it was not firing yet."""
        await self.recall()
        now = self.clock()
        severity = AlertSeverity(severity).value
        won = False

        def see(current: JsonValue) -> JsonValue:
            nonlocal won
            won = False
            if isinstance(current, dict) and _firing(current):
                return {**current, "seen_by": {**self._fresh(current, now), self.replica: now}}
            if isinstance(current, dict) and now - _number(current.get("resolved_at")) < (
                self.cooldown_s
            ):
                return current  # resolved a moment ago: let the flapping settle first
            won = True
            return {
                "fingerprint": fingerprint,
                "status": "firing",
                "severity": severity,
                "summary": summary[:1024],
                "since": now,
                "seen_by": {self.replica: now},
            }

        stored = await self.kv.update(bucket_key("alert", fingerprint), see)
        if _firing(stored) and isinstance(stored, dict):
            self._known[fingerprint] = stored
        if won:
            self._announcer.alert(severity, summary, fingerprint=fingerprint, details=details)
        return won

    async def resolve(
        self, fingerprint: str, *, details: Mapping[str, JsonValue] | None = None
    ) -> bool:
        """Say this replica no longer sees the cause; publish ``resolved`` if none does."""
        await self.recall()
        now = self.clock()
        won = False

        def unsee(current: JsonValue) -> JsonValue:
            nonlocal won
            won = False
            if not (isinstance(current, dict) and _firing(current)):
                return current
            seen = self._fresh(current, now)
            seen.pop(self.replica, None)
            if seen:
                return {**current, "seen_by": seen}
            won = True
            return {**current, "status": "resolved", "seen_by": {}, "resolved_at": now}

        if fingerprint not in self._known:
            # Nothing this replica saw firing: no write, so a resolve on every quiet
            # evaluation costs nothing.
            return False
        stored = await self.kv.update(bucket_key("alert", fingerprint), unsee)
        if not _firing(stored):
            self._known.pop(fingerprint, None)
        if won and isinstance(stored, dict):
            self._announce_resolved(stored, now, details)
        return won

    async def sweep(self) -> int:
        """Resolve the causes that no replica has confirmed for ``stale_after_s``: those only
        replicas that went away for good still held firing. Whichever replica's sweep gets
        there first resolves each (compare-and-set); returns how many this one resolved.

        Run by a timer the context owns, every ``stale_after_s``: without it such an alert
        would fire forever, since a replica only restates the causes it knows.
        """
        now = self.clock()
        swept = 0
        for key in await self.kv.keys():
            if not key.startswith("alert."):
                continue
            record = await self.kv.get(key)
            if not (isinstance(record, dict) and _firing(record)) or self._fresh(record, now):
                continue  # resolved, or someone still sees it: nothing to write
            won = False

            def settle(current: JsonValue) -> JsonValue:
                nonlocal won
                won = (
                    isinstance(current, dict) and _firing(current) and not self._fresh(current, now)
                )
                if not won or not isinstance(current, dict):
                    return current
                return {**current, "status": "resolved", "seen_by": {}, "resolved_at": now}

            stored = await self.kv.update(key, settle)
            if won and isinstance(stored, dict):
                self._known.pop(str(stored.get("fingerprint")), None)
                self._announce_resolved(stored, now, {"reason": "no replica confirms it any more"})
                swept += 1
        return swept

    def _announce_resolved(
        self, stored: dict[str, JsonValue], now: float, details: Mapping[str, JsonValue] | None
    ) -> None:
        self._announcer.alert(
            str(stored.get("severity") or "warning"),
            f"resolved: {stored.get('summary')}",
            fingerprint=str(stored.get("fingerprint")),
            details={**(details or {}), "firing_since": stored.get("since"), "resolved_at": now},
            resolved=True,
        )
