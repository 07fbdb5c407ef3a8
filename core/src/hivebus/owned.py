"""Stopping the background tasks a component owns, with a bound on the wait.

On Python 3.11 ``asyncio.wait_for`` can swallow a cancellation that races the inner
future (fixed in 3.12), so a cancelled task may keep running: shutdown waits for cancelled
tasks a bounded time, and loops also check their own ``stopping`` flags.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]

log = logging.getLogger("hivebus")


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None], timeout: float = 2.0) -> None:
    """Cancel ``tasks`` and wait up to ``timeout`` for them to end."""
    pending = [task for task in tasks if task is not None and not task.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, stuck = await asyncio.wait(pending, timeout=timeout)
    for task in stuck:
        log.warning("task did not stop when cancelled", extra={"task": task.get_name()})
