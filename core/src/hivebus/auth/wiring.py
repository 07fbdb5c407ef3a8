"""How a core in secure mode builds its guard: the book, the policy, the audit store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hivebus_hookspecs.models import TaskView

from ..errors import HivebusError
from .audit import AuditLog, AuditStore, FileAuditStore
from .directory import AuthDir
from .guard import Guard
from .policy import DELEGATOR_KEY, Policy, PrincipalSource

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from ..adapters.events import EventPublisher
    from ..config import HivebusConfig
    from ..domain import Orchestrator
    from ..subjects import Subjects

__all__ = ["open_guard"]


async def open_guard(
    config: HivebusConfig,
    orchestrator: Orchestrator,
    events: EventPublisher,
    subjects: Subjects,
    js: JetStreamContext | None,
) -> Guard:
    assert config.auth_dir is not None
    directory = AuthDir(config.auth_dir)
    directory.book()  # a clear error now rather than at the first request
    store: AuditStore
    if js is not None:
        from .audit_stream import StreamAuditStore

        store = await StreamAuditStore.open(
            js, subjects, config.audit_retention_s, config.kv_replicas
        )
    else:
        store = FileAuditStore(directory.audit_file)
    policy = Policy(
        PrincipalSource(directory.book_path),
        rates=config.principal_rate_limits,
        burst_s=config.principal_burst_s,
        max_live_tasks=config.max_live_tasks_per_principal,
    )

    def task(task_id: str) -> TaskView | None:
        try:
            return orchestrator.get_task(task_id)
        except HivebusError:
            return None

    def live_tasks(name: str) -> int:
        cache = orchestrator.cache
        held = (cache.tasks.get(task_id) for task_id in cache.live)
        return sum(1 for t in held if t is not None and t.metadata.get(DELEGATOR_KEY) == name)

    return Guard(
        policy,
        AuditLog(events.publish_message, subjects, store),
        task=task,
        live_tasks=live_tasks,
        limit=config.max_payload_bytes,
        orchestrator_id=config.orchestrator_id,
        server_log=config.nats_server_log,
    )
