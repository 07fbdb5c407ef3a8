"""How an attempt ends: the entry it leaves in the task's history, and what the task becomes.

A task's retry policy (the request's, its type's from configuration, or the global one) is
resolved once at delegation and stored in the record, so every replica and every restart
decides the same way. With a policy, an attempt that failed (reported by the agent, past its
execution timeout, or lost with its agent) makes the task ``retrying`` until its backoff has
passed, and ``dead`` once the policy's attempts are used up. Without one, the rules from
before policies existed hold: a reported failure is final, and a task taken back is queued
again at once, up to ``max_attempts``.

Everything here is pure: the transitions call it inside their compare-and-set change
functions, so a lost race decides again on the record as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from hivebus_hookspecs.models import (
    MAX_ATTEMPTS_LIMIT,
    AttemptOutcome,
    DelegateRequest,
    RetryPolicy,
    TaskStatus,
)

if TYPE_CHECKING:
    from ..config import HivebusConfig
    from .tasks import TaskRecord

__all__ = ["HISTORY_ERROR_CHARS", "HISTORY_ROOM", "after_failure", "policy_for", "with_attempt"]

HISTORY_ERROR_CHARS = 200
"""An attempt's error as kept in the history: its first characters (the task's ``error``
keeps the whole of the last one)."""
HISTORY_ROOM = 8192
"""Bytes a task's history may take in its record (as JSON): the newest attempts that fit, at
most ``MAX_ATTEMPTS_LIMIT``; a delegated task's record keeps this much room for it."""


def policy_for(req: DelegateRequest, config: HivebusConfig) -> dict[str, Any] | None:
    """The policy in force for a new task, as stored in its record."""
    policy = req.retry or config.retry_by_type.get(req.task_type) or config.retry
    return policy.model_dump() if policy is not None else None


def with_attempt(
    task: TaskRecord, now: float, outcome: AttemptOutcome, error: str | None = None
) -> list[dict[str, Any]]:
    """The task's history with the attempt now ending added (the newest entries kept)."""
    entry: dict[str, Any] = {  # an ``Attempt``, built as its JSON: on every completion's path
        "attempt": task.attempts,
        "agent_id": task.agent_id,
        "assigned_at": task.assigned_at,
        "finished_at": now,
        "outcome": outcome.value,
        "error": error[:HISTORY_ERROR_CHARS] if error is not None else None,
    }
    history = [*task.history, entry][-MAX_ATTEMPTS_LIMIT:]
    while len(history) > 1 and len(orjson.dumps(history)) > HISTORY_ROOM:
        del history[0]  # the oldest go first; each entry's ``attempt`` says which are left
    return history


def after_failure(
    task: TaskRecord,
    now: float,
    outcome: AttemptOutcome,
    error: str,
    *,
    config: HivebusConfig,
    final: bool = False,
) -> TaskRecord:
    """What an assigned task becomes when its attempt failed with ``outcome``.

    ``final``: no retry whatever the policy (the agent said the failure is not retryable, or
    a timeout with ``on_execution_timeout = "fail"`` and no policy).
    """
    history = with_attempt(task, now, outcome, error)
    policy: RetryPolicy | None = task.policy
    used = task.attempts - task.attempts_base
    if final or (policy is None and outcome is AttemptOutcome.FAILED):
        # Reported failures are final without a policy; the agent stays on the record.
        return task.evolve(
            status=TaskStatus.FAILED,
            success=False,
            error=error,
            finished_at=now,
            history=history,
        )
    let_go: dict[str, Any] = {
        "agent_id": None,
        "assigned_at": None,
        "offered_at": None,
        "history": history,
    }
    allowed = policy.max_attempts if policy is not None else config.max_attempts
    if used >= allowed:
        if policy is None:
            error = f"gave up after {task.attempts} attempts ({error})"
        return task.evolve(
            status=TaskStatus.DEAD, success=False, error=error, finished_at=now, **let_go
        )
    if policy is None:
        return task.evolve(status=TaskStatus.QUEUED, **let_go)
    wait = policy.backoff(used)
    return task.evolve(status=TaskStatus.RETRYING, error=error, not_before=now + wait, **let_go)
