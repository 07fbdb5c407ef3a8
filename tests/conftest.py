"""Shared helpers; the fixtures themselves come from the ``hivebus.testing`` pytest plugin."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from contract_wire import Wire
from hivebus import HivebusConfig
from nats.aio.client import Client


async def eventually(
    check: Callable[[], object],
    timeout: float = 5.0,
    explain: Callable[[], Awaitable[str]] | None = None,
) -> None:
    """Wait until ``check()`` is truthy (or an awaitable resolving truthy).

    ``explain`` describes the state when the wait fails, so a failure says what was left.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            detail = f":\n{await explain()}" if explain is not None else ""
            pytest.fail(f"condition not met within {timeout}s{detail}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def wire(hivebus_core: object, nats_client: Client, hivebus_config: HivebusConfig) -> Wire:
    """The wire contract, spoken over a raw NATS connection to the running core."""
    return Wire(nats_client, hivebus_config.prefix)
