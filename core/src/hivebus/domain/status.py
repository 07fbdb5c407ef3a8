"""The status report and the health assessment, derived from the orchestrator's state."""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING, Any

from hivebus_hookspecs.models import AgentState, HealthStatus

from .ports import HealthCheck

if TYPE_CHECKING:
    from .orchestrator import Orchestrator

__all__ = ["STATUS_CAPABILITIES", "assess", "build_status", "rss_mb"]

STATUS_CAPABILITIES = 100
"""The status lists the most held capabilities, this many at most: 40 agents with 256 long
capabilities each once made the status too large to send."""


def rss_mb() -> float:
    """Resident memory of this process in MiB (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return 0.0


def assess(
    orch: Orchestrator, plugins: dict[str, HealthStatus], checks: list[HealthCheck]
) -> tuple[HealthStatus, list[str]]:
    """The overall health and the human-readable reasons it is not ``healthy``."""
    config = orch.config
    issues: list[str] = []
    statuses = [HealthStatus.HEALTHY]
    for check in checks:
        found = check()
        if found is not None:
            statuses.append(found[0])
            issues.append(found[1])
    for name, plugin_health in plugins.items():
        if plugin_health is not HealthStatus.HEALTHY:
            statuses.append(HealthStatus.DEGRADED)
            issues.append(f"plugin {name} is {plugin_health.value}")
    error_rate = orch.stats.error_rate_percent
    if error_rate > config.max_error_rate_percent:
        statuses.append(HealthStatus.DEGRADED)
        issues.append(f"error rate {error_rate:.1f}% exceeds {config.max_error_rate_percent}%")
    rss = rss_mb()
    if rss > config.max_memory_mb:
        statuses.append(HealthStatus.DEGRADED)
        issues.append(f"memory {rss:.1f} MiB exceeds {config.max_memory_mb} MiB")
    return HealthStatus.worst(*statuses), issues


def build_status(
    orch: Orchestrator,
    plugins: dict[str, HealthStatus],
    health: tuple[HealthStatus, list[str]],
) -> dict[str, Any]:
    now = orch.clock()
    uptime = orch.monotonic() - orch.started_mono
    agents = list(orch.registry)
    active = [a for a in agents if a.state is AgentState.ACTIVE]
    queued = len(orch.queue)
    waiting = Counter(
        task.status.value
        for task in (orch.cache.tasks.get(t) for t in orch.cache.live)
        if task is not None and task.status.is_waiting
    )
    return {
        "orchestrator_id": orch.orchestrator_id,
        "mode": orch.config.mode.value,
        "uptime_seconds": round(uptime, 3),
        "health_status": health[0].value,
        "health_issues": health[1],
        "agents": {
            "total": len(agents),
            "active": len(active),
            "busy": sum(1 for a in active if orch.registry.load(a.agent_id)),
            "offline": len(agents) - len(active),
            "quarantined": sum(1 for a in active if a.quarantined_by is not None),
            "by_role": dict(Counter(a.role.value for a in active)),
        },
        "tasks": {
            "active": orch.live_count - queued - sum(waiting.values()),
            "queued": queued,
            "waiting": {status: waiting[status] for status in ("scheduled", "blocked", "retrying")},
            "completed_total": orch.stats.completed_total,
            "error_total": orch.stats.error_total,
            "delegations_total": orch.stats.delegations_total,
        },
        "performance": {
            "average_task_duration_ms": round(orch.stats.average_task_duration_ms, 3),
            "error_rate_percent": round(orch.stats.error_rate_percent, 3),
            "delegations_per_second": round(orch.stats.delegations_per_second(now, uptime), 3),
            "memory_mb": round(rss_mb(), 3),
        },
        "capabilities_index": orch.registry.capability_counts(STATUS_CAPABILITIES),
        "capabilities_total": orch.registry.capability_total,
        "plugins": {name: h.value for name, h in plugins.items()},
        "timestamp": now,
    }
