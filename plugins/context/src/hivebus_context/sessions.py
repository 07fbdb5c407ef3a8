"""Session contexts shared by the tasks of one session, on ``plugin.context.get|put|append``.

A session is one value in the plugin's bucket (key ``session.<session_id>``), changed only by
compare-and-set: two replicas appending at once both land, each on the other's value. Past
its budget a session drops its oldest unpinned fragments, and the reply lists them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from hivebus_hookspecs import EndpointError, ErrorCode, KeyValueStore
from hivebus_hookspecs.models import TASK_ID_PATTERN
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from .fragments import OverBudget, add, compact, fresh, size_of, summary
from .settings import SessionSettings

__all__ = ["KEY_PREFIX", "Sessions"]

log = logging.getLogger("hivebus.context")

KEY_PREFIX = "session."

M = TypeVar("M", bound=BaseModel)

SessionId = Field(pattern=TASK_ID_PATTERN, max_length=128)


class Fragment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: JsonValue
    pinned: bool = False
    """Never dropped by compaction."""


class GetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = SessionId


class PutRequest(GetRequest):
    fragments: list[Fragment]
    """The session's whole context, oldest first: replaces what it held."""


class AppendRequest(GetRequest):
    content: JsonValue = None
    pinned: bool = False
    fragments: list[Fragment] | None = None
    """Several fragments at once, instead of ``content``."""


def _parse(model: type[M], request: dict[str, Any]) -> M:
    try:
        return model.model_validate(request)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}"
            for e in exc.errors(include_url=False)[:3]
        )
        raise EndpointError(problems) from None


class Sessions:
    def __init__(
        self, kv: KeyValueStore, settings: SessionSettings, clock: Callable[[], float]
    ) -> None:
        self._kv = kv
        self._settings = settings
        self._clock = clock
        self.appended = 0
        self.dropped = 0
        self.expired = 0

    async def get(self, request: dict[str, Any]) -> dict[str, Any]:
        """``plugin.context.get``: the session with its fragments (empty if there is none)."""
        asked = _parse(GetRequest, request)
        stored = await self._kv.get(KEY_PREFIX + asked.session_id)
        if not isinstance(stored, dict):
            empty = fresh(asked.session_id, self._clock())
            return {"found": False, "session": {**empty, "budget_bytes": self._budget}}
        return {"found": True, "session": {**stored, "budget_bytes": self._budget}}

    async def put(self, request: dict[str, Any]) -> dict[str, Any]:
        """``plugin.context.put``: replace the session's context."""
        asked = _parse(PutRequest, request)
        return await self._change(asked.session_id, asked.fragments, replace=True)

    async def append(self, request: dict[str, Any]) -> dict[str, Any]:
        """``plugin.context.append``: add fragments after the newest."""
        asked = _parse(AppendRequest, request)
        items = asked.fragments
        if items is not None and "content" in request:
            raise EndpointError("append takes content or fragments, not both")
        if items is None:
            if "content" not in request:
                raise EndpointError("append needs content or fragments")
            items = [Fragment(content=asked.content, pinned=asked.pinned)]
        return await self._change(asked.session_id, items, replace=False)

    @property
    def _budget(self) -> int:
        return self._settings.budget_bytes

    async def _change(
        self, session_id: str, items: list[Fragment], *, replace: bool
    ) -> dict[str, Any]:
        for item in items:
            if size_of(item.content) > self._budget:
                raise EndpointError(
                    f"a fragment of {size_of(item.content)} bytes exceeds the session budget "
                    f"of {self._budget}",
                    ErrorCode.PAYLOAD_TOO_LARGE,
                )
        outcome: dict[str, Any] = {}

        def change(current: JsonValue) -> JsonValue:
            # Runs again on a newer value if another replica wrote first: start from it.
            now = self._clock()
            session = current if isinstance(current, dict) else fresh(session_id, now)
            if replace:
                session = {**fresh(session_id, now), "created_at": session["created_at"]}
                session["next_id"] = current["next_id"] if isinstance(current, dict) else 1
            ids = add(session, [(i.content, i.pinned) for i in items], now)
            try:
                dropped = compact(session, self._budget)
            except OverBudget as exc:
                raise EndpointError(str(exc)) from None
            outcome.update(ids=ids, dropped=dropped, session=session)
            stored: JsonValue = session
            return stored

        await self._kv.update(KEY_PREFIX + session_id, change)
        self.appended += len(items)
        self.dropped += len(outcome["dropped"])
        if outcome["dropped"]:
            log.info(
                "session compacted",
                extra={"session_id": session_id, "dropped": len(outcome["dropped"])},
            )
        return {
            "session": summary(outcome["session"], self._budget),
            "fragment_ids": outcome["ids"],
            "dropped": outcome["dropped"],
        }

    async def expire(self) -> None:
        """Remove sessions idle past ``idle_expiry_s`` (a timer; every replica may run it)."""
        cutoff = self._clock() - self._settings.idle_expiry_s

        def idle(session: JsonValue) -> bool:
            updated = session.get("updated_at") if isinstance(session, dict) else None
            return isinstance(updated, int | float) and updated < cutoff

        for key in await self._kv.keys():
            # Compare-and-set: an append landing meanwhile makes the session active again,
            # and it is kept.
            if key.startswith(KEY_PREFIX) and await self._kv.delete_if(key, idle):
                self.expired += 1
                log.info("idle session expired", extra={"session_id": key[len(KEY_PREFIX) :]})
