"""The guard between the wire and the domain: every request in secure mode passes it first.

The service hands it the operation, the request's headers and body; it finds the identity
the NATS server stamped, asks the policy, and answers with the body to serve (a delegation
gains ``metadata.delegated_by``) or a ``Refusal``. It audits refusals at once and allowed
state-changing requests once they are answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from hivebus_hookspecs.models import (
    CompleteRequest,
    Decision,
    DelegateRequest,
    DeregisterRequest,
    HeartbeatRequest,
    RegisterRequest,
    SecurityEvent,
    TaskRequest,
    TaskView,
)
from pydantic import BaseModel

from ..codec import decode
from .audit import AuditLog
from .identity import Identity, identity_from_headers
from .policy import DELEGATOR_KEY, STATE_CHANGING, Ask, Policy, Refusal, TaskFacts
from .principals import Principal
from .server_config import HIVE_ACCOUNT
from .server_log import Refusal as ServerRefusal
from .server_log import ServerLogFollower

__all__ = ["Admitted", "Guard"]

TaskLookup = Callable[[str], TaskView | None]
LiveCount = Callable[[str], int]

_BODIES: dict[str, type[BaseModel]] = {
    "agent-register": RegisterRequest,
    "agent-heartbeat": HeartbeatRequest,
    "agent-deregister": DeregisterRequest,
    "task-delegate": DelegateRequest,
    "task-complete": CompleteRequest,
    "task-get": TaskRequest,
    "task-cancel": TaskRequest,
    "task-retry": TaskRequest,
}
_NEEDS_TASK = frozenset({"task-complete", "task-progress", "task-get", "task-cancel", "task-retry"})


@dataclass(frozen=True, slots=True)
class Admitted:
    principal: Principal
    identity: Identity
    operation: str
    data: bytes
    agent_id: str | None
    task_id: str | None


class Guard:
    def __init__(
        self,
        policy: Policy,
        audit: AuditLog,
        *,
        task: TaskLookup,
        live_tasks: LiveCount,
        limit: int,
        orchestrator_id: str,
        clock: Callable[[], float] = time.time,
        server_log: Path | None = None,
    ) -> None:
        self._policy = policy
        self.audit = audit
        self._task = task
        self._live_tasks = live_tasks
        self._limit = limit
        self._orchestrator_id = orchestrator_id
        self._clock = clock
        self._flooding: dict[str, tuple[float, int]] = {}
        self._follower = (
            ServerLogFollower(server_log, self.server_refused) if server_log is not None else None
        )

    def admit(self, operation: str, headers: Mapping[str, str] | None, data: bytes) -> Admitted:
        identity = identity_from_headers(headers)
        ask = Ask(operation)
        try:
            principal = self._policy.authenticate(identity)
            assert identity is not None
            self._policy.limit(principal)
            body = _decode(operation, data, self._limit)
            ask = _ask(operation, body)
            facts = self._facts(ask.task_id) if operation in _NEEDS_TASK else None
            self._policy.authorize(principal, ask, facts, self._live_tasks)
        except Refusal as refusal:
            reason = refusal.reason
            if refusal.decision is Decision.RATE_LIMITED:
                # A flood must not become a flood of audit records: one a second per
                # principal, counting the ones it stands for.
                held = self._flood_audit(refusal.name or "")
                if held is None:
                    raise
                reason += f" ({held} more refused since the last record)" if held else ""
            self._record(
                refusal.decision, ask, reason, refusal.principal, identity, name=refusal.name
            )
            raise
        if isinstance(body, DelegateRequest):
            # The body as the client wrote it (already validated), plus the delegator: not
            # the model re-encoded, so no field's form changes on the way to the domain.
            raw = orjson.loads(data or b"{}")
            raw["metadata"] = {**raw.get("metadata", {}), DELEGATOR_KEY: principal.name}
            data = orjson.dumps(raw)
        return Admitted(principal, identity, operation, data, ask.agent_id, ask.task_id)

    def _flood_audit(self, name: str) -> int | None:
        """``None``: do not audit this rate-limited refusal; else how many were skipped."""
        now = self._clock()
        last, skipped = self._flooding.get(name, (0.0, 0))
        if now - last < 1.0:
            self._flooding[name] = (last, skipped + 1)
            return None
        self._flooding[name] = (now, 0)
        if len(self._flooding) > 10_000:
            self._flooding = {k: v for k, v in self._flooding.items() if now - v[0] < 1.0}
        return skipped

    def server_refused(self, refusal: ServerRefusal) -> None:
        """Audit a refusal the NATS server made itself (read from its log)."""
        operation, key, what = refusal
        principal, revoked = self._policy.find(key) if key else (None, None)
        decision = Decision.UNAUTHENTICATED if operation == "server-connect" else Decision.FORBIDDEN
        account = Identity(HIVE_ACCOUNT, key) if key and principal else None
        self._record(decision, Ask(operation), what, principal, account, name=revoked)

    def start(self) -> None:
        if self._follower is not None:
            self._follower.start()

    async def close(self) -> None:
        if self._follower is not None:
            await self._follower.stop()

    def settle(self, admitted: Admitted, outcome: str, task_id: str | None = None) -> None:
        """Audit an allowed request once answered: ``outcome`` is ``ok`` or the error code."""
        if admitted.operation not in STATE_CHANGING and not admitted.operation.startswith(
            "plugin-"
        ):
            return
        ask = Ask(admitted.operation, admitted.agent_id, task_id or admitted.task_id)
        self._record(
            Decision.ALLOWED, ask, "", admitted.principal, admitted.identity, outcome=outcome
        )

    def _facts(self, task_id: str | None) -> TaskFacts | None:
        view = self._task(task_id) if task_id is not None else None
        if view is None:
            return None
        delegator = view.metadata.get(DELEGATOR_KEY)
        return TaskFacts(delegator if isinstance(delegator, str) else None, view.agent_id)

    def _record(
        self,
        decision: Decision,
        ask: Ask,
        reason: str,
        principal: Principal | None,
        identity: Identity | None,
        *,
        name: str | None = None,
        outcome: str | None = None,
    ) -> None:
        self.audit.record(
            SecurityEvent(
                event=f"security.{decision.value}",
                timestamp=self._clock(),
                decision=decision,
                operation=ask.operation,
                principal=principal.name if principal else name,
                kind=principal.kind.value if principal else None,
                account=identity.account if identity else None,
                reason=reason,
                agent_id=ask.agent_id,
                task_id=ask.task_id,
                outcome=outcome,
                orchestrator_id=self._orchestrator_id,
            )
        )


def _decode(operation: str, data: bytes, limit: int) -> BaseModel | None:
    model = _BODIES.get(operation)
    if model is not None:
        return decode(data, model, limit)
    if operation in _NEEDS_TASK:  # operations added later: read the fields that matter
        return decode(data, _TaskFields, limit)
    return None


class _TaskFields(BaseModel):
    """The authorization-relevant fields of a task request this guard has no model for."""

    model_config = {"extra": "ignore"}
    task_id: str
    agent_id: str | None = None


def _ask(operation: str, body: Any) -> Ask:
    if body is None:
        return Ask(operation)
    agent_id = getattr(body, "agent_id", None)
    task_id = getattr(body, "task_id", None)
    if isinstance(body, RegisterRequest):
        return Ask(operation, agent_id, None, tuple(body.capabilities), body.role.value)
    if isinstance(body, DelegateRequest):
        return Ask(operation, None, task_id, metadata_keys=frozenset(body.metadata))
    return Ask(operation, agent_id, task_id)
