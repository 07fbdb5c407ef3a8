"""The process-wide orchestrator the legacy API hands out: started on first use, one per
process, started anew when the event loop it ran on is gone."""

from __future__ import annotations

import asyncio
import warnings

from .config import OrchestratorConfig
from .orchestrator import UniversalOrchestrator

__all__ = ["get_orchestrator", "get_universal_orchestrator", "shutdown_universal_orchestrator"]


class _ProcessWide:
    instance: UniversalOrchestrator | None = None
    lock: asyncio.Lock | None = None
    lock_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def lock_for(cls, loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
        if cls.lock is None or cls.lock_loop is not loop:
            cls.lock, cls.lock_loop = asyncio.Lock(), loop
        return cls.lock


async def get_universal_orchestrator(
    config: OrchestratorConfig | None = None,
) -> UniversalOrchestrator:
    """The process-wide orchestrator, started on first call (later calls return it)."""
    loop = asyncio.get_running_loop()
    async with _ProcessWide.lock_for(loop):
        instance = _ProcessWide.instance
        if instance is not None and instance.running and instance.loop is not loop:
            warnings.warn(
                "the process-wide orchestrator ran on an event loop that is gone; starting anew",
                RuntimeWarning,
                stacklevel=2,
            )
            instance.abandon()
            instance = None
        if instance is not None and instance.running:
            if config is not None and config != instance.config:
                warnings.warn(
                    "get_universal_orchestrator(config) ignored the config: the orchestrator is "
                    "already running; call shutdown_universal_orchestrator() first to change it",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return instance
        instance = UniversalOrchestrator(config)
        await instance.start()
        _ProcessWide.instance = instance
        return instance


get_orchestrator = get_universal_orchestrator
"""The other legacy name of ``get_universal_orchestrator``."""


async def shutdown_universal_orchestrator() -> None:
    """Shut the process-wide orchestrator down (a no-op when none is running)."""
    instance, _ProcessWide.instance = _ProcessWide.instance, None
    if instance is None:
        return
    if instance.loop is asyncio.get_running_loop():
        await instance.shutdown()
    else:
        instance.abandon()
