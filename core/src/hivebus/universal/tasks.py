"""The facade's tasks: delegation and completion over the wire, on behalf of legacy callers.

A legacy agent accepts only the tasks its own facade is delegating right now (``claim``), so
the caller of ``delegate_task`` hears of every task one of them takes. An acceptance that
reached the core too late (it had moved on) holds no slot there, and is released here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from hivebus_hookspecs.models import (
    CompleteRequest,
    DelegateReply,
    DelegateRequest,
    ErrorCode,
    TaskRequest,
    TaskStatus,
)
from nats.aio.client import Client

from ..config import HivebusConfig
from ..errors import RemoteError
from ..sdk.request import call
from ..subjects import Subjects
from .responders import LegacyAgents
from .thresholds import Thresholds

__all__ = ["LegacyTasks"]

log = logging.getLogger("hivebus.universal")

_TAKEN = frozenset({TaskStatus.ASSIGNED, TaskStatus.COMPLETED, TaskStatus.FAILED})


class LegacyTasks:
    """Delegates and completes tasks for one running facade; ``agents`` are its responders."""

    def __init__(
        self,
        nc: Client,
        subjects: Subjects,
        core_config: HivebusConfig,
        thresholds: Thresholds,
        cancel_timeout_s: float,
    ) -> None:
        self._nc = nc
        self._subjects = subjects
        self._core_config = core_config
        self._thresholds = thresholds
        self._cancel_timeout_s = cancel_timeout_s
        self._delegating: dict[str, set[str]] = {}
        """The tasks being delegated right now, each with the legacy agents that accepted it."""

    def claim(self, task_id: str, agent_id: str) -> bool:
        """True when ``task_id`` is being delegated here: ``agent_id`` then takes it."""
        accepted = self._delegating.get(task_id)
        if accepted is None:
            return False
        accepted.add(agent_id)
        return True

    async def delegate(self, request: DelegateRequest, agents: LegacyAgents) -> str | None:
        """The id of the agent that took the task, or ``None``."""
        task_id = request.task_id
        assert task_id is not None
        owner = task_id not in self._delegating  # a concurrent duplicate shares the first claim
        if owner:
            self._delegating[task_id] = set()
        core_config = self._core_config
        timeout = (
            core_config.request_timeout_s
            + core_config.offer_timeout_s * core_config.offer_candidates
        )
        assigned: str | None = None
        try:
            with Thresholds.timing(self._thresholds.delegation_ms):
                raw = await call(self._nc, self._subjects.delegate, request, timeout)
            reply = DelegateReply.model_validate(raw)
            # A fast agent (a real one on the same bus) may finish before the reply is sent.
            assigned = reply.agent_id if reply.status in _TAKEN else None
        except RemoteError as exc:
            log.info(
                "task not assigned",
                extra={"task_id": task_id, "code": exc.code.value, "error": exc.message},
            )
        except TimeoutError:
            log.warning("delegation not answered; cancelling the task", extra={"task_id": task_id})
            await self._cancel_quietly(task_id)
        finally:
            accepted = self._delegating.pop(task_id, set()) if owner else set()
        # An acceptance that reached the core too late (it had moved on) holds no slot there.
        _release(agents, task_id, accepted - {assigned} if assigned else accepted)
        return assigned

    async def complete(self, request: CompleteRequest, agents: LegacyAgents) -> bool:
        """Report the task done (or failed), freeing the agent's slot; ``False`` if refused."""
        task_id, agent_id = request.task_id, request.agent_id
        try:
            await call(
                self._nc, self._subjects.complete, request, self._core_config.request_timeout_s
            )
        except RemoteError as exc:
            if exc.code is ErrorCode.INVALID_STATE:
                _release(agents, task_id, [agent_id])  # finished another way (cancelled)
            log.warning(
                "completion refused",
                extra={"task_id": task_id, "code": exc.code.value, "error": exc.message},
            )
            return False
        _release(agents, task_id, [agent_id])
        return True

    async def _cancel_quietly(self, task_id: str) -> None:
        with contextlib.suppress(Exception):
            await call(
                self._nc,
                self._subjects.cancel,
                TaskRequest(task_id=task_id),
                self._cancel_timeout_s,
            )


def _release(agents: LegacyAgents, task_id: str, agent_ids: Iterable[str]) -> None:
    for agent_id in agent_ids:
        responder = agents.get(agent_id)
        if responder is not None:
            responder.held.discard(task_id)
