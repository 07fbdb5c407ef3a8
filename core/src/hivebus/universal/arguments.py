"""Legacy arguments as wire requests.

Legacy callers pass enums of their own, sets, tuples and arbitrary objects; the wire takes
JSON. Each builder raises ``ValidationError``, ``ValueError`` or ``TypeError`` when the
arguments cannot make a valid request, and ``invalid_reason`` says why in one line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from hivebus_hookspecs.models import (
    AgentRole,
    CompleteRequest,
    DelegateRequest,
    RegisterRequest,
    TaskPriority,
)
from pydantic import ValidationError

from .enums import plain

__all__ = ["ERROR_TEXT_LIMIT", "completion", "delegation", "invalid_reason", "registration"]

ERROR_TEXT_LIMIT = 8192


def registration(
    agent_id: str,
    role: AgentRole | str,
    capabilities: Iterable[str],
    metadata: dict[str, Any] | None,
) -> RegisterRequest:
    """``metadata["max_tasks"]`` (or ``max_concurrent_tasks``) sets ``max_tasks`` (default 1)."""
    role_value = plain(role)
    return RegisterRequest(
        agent_id=agent_id,
        role=role_value.lower() if isinstance(role_value, str) else role_value,
        capabilities=_names(capabilities),
        max_tasks=_max_tasks(metadata),
        metadata=_jsonable(metadata or {}),
    )


def delegation(
    task_id: str,
    task_type: str,
    required_capabilities: Iterable[str],
    priority: TaskPriority | int | str,
    metadata: dict[str, Any] | None,
) -> DelegateRequest:
    """A delegation that is never queued: legacy callers want an agent now, or ``None``."""
    return DelegateRequest(
        task_id=task_id,
        task_type=task_type,
        required_capabilities=_names(required_capabilities),
        priority=plain(priority),
        metadata=_jsonable(metadata or {}),
        queue=False,
    )


def completion(task_id: str, agent_id: str, result: Any, success: bool) -> CompleteRequest:
    """A failed task's ``error`` is taken from its result (``result["error"]`` or a string)."""
    return CompleteRequest(
        task_id=task_id,
        agent_id=agent_id,
        success=bool(success),
        result=_jsonable(result),
        error=None if success else _error_text(result),
    )


def invalid_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
    return str(exc)


def _jsonable(value: Any) -> Any:
    """Legacy values travel as JSON: sets and tuples become lists, anything else a string."""

    def fallback(obj: Any) -> Any:
        if isinstance(obj, set | frozenset | tuple):
            return list(obj)
        return str(obj)

    return orjson.loads(orjson.dumps(value, default=fallback, option=orjson.OPT_NON_STR_KEYS))


def _names(capabilities: Iterable[str] | str) -> list[str]:
    """A lone string is one capability, not a sequence of one-letter ones."""
    return [capabilities] if isinstance(capabilities, str) else list(capabilities)


def _max_tasks(metadata: dict[str, Any] | None) -> Any:
    for key in ("max_tasks", "max_concurrent_tasks"):
        if metadata and key in metadata:
            return metadata[key]
    return 1


def _error_text(result: Any) -> str | None:
    if isinstance(result, dict) and result.get("error") is not None:
        return str(result["error"])[:ERROR_TEXT_LIMIT]
    if isinstance(result, str):
        return result[:ERROR_TEXT_LIMIT]
    return None
