"""``plugin_manager.register_plugin(plugin)``, as the legacy guide writes it: with or without await.

The legacy guide registers a class plugin without ``await``; code written that way must get a
registered plugin whose hooks run, exactly like code that awaits the call.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import eventually
from hivebus import AgentRole, UniversalOrchestrator, get_universal_orchestrator
from hivebus import shutdown_universal_orchestrator as shutdown
from test_migration import Recorder, legacy_config

pytestmark = pytest.mark.filterwarnings("ignore::hivebus.PluginNotInstalledWarning")


@pytest.fixture(autouse=True)
async def _process_wide_orchestrator_is_shut_down() -> AsyncIterator[None]:
    yield
    await shutdown()


async def run_one_task(orchestrator: UniversalOrchestrator, task_id: str) -> None:
    assert await orchestrator.delegate_task(task_id, "build", ["python"]) == "coder-1"
    assert await orchestrator.complete_task(task_id, "coder-1", {"ok": task_id})


@pytest.mark.parametrize("awaited", [True, False], ids=["awaited", "not-awaited"])
async def test_register_plugin_registers_with_or_without_await(awaited: bool):
    orchestrator = await get_universal_orchestrator(legacy_config())
    assert await orchestrator.register_agent("coder-1", AgentRole.WORKER, ["python"])
    recorder = Recorder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine ... was never awaited", ever
        if awaited:
            assert await orchestrator.plugin_manager.register_plugin(recorder)
        else:
            orchestrator.plugin_manager.register_plugin(recorder)
        assert orchestrator.plugin_manager.get_plugin("recorder") is recorder

        await run_one_task(orchestrator, "t-1")

    await eventually(lambda: len(recorder.post) == 1)
    assert recorder.context is not None
    assert recorder.context["orchestrator"] is orchestrator
    [(context, result)] = recorder.post
    assert (context["task_id"], context["observed_by"], result) == (
        "t-1",
        "recorder",
        {"ok": "t-1"},
    )
    status = await orchestrator.get_system_status()
    assert status["plugins"]["recorder"] == "healthy"


async def test_not_awaited_before_start_is_initialized_when_the_core_starts():
    orchestrator = UniversalOrchestrator(legacy_config())
    recorder = Recorder()
    registration = orchestrator.plugin_manager.register_plugin(recorder)
    assert registration.done()
    assert registration.result() is True
    async with orchestrator:
        assert recorder.context is not None
        assert await orchestrator.register_agent("coder-1", AgentRole.WORKER, ["python"])
        await run_one_task(orchestrator, "t-1")
        await eventually(lambda: len(recorder.post) == 1)
    assert recorder.cleaned


async def test_a_refusal_not_awaited_still_leaves_nothing_behind():
    class Declines(Recorder):
        async def initialize(self, orchestrator_context: dict[str, Any]) -> bool:
            await asyncio.sleep(0.01)
            return False

    orchestrator = await get_universal_orchestrator(legacy_config())
    registration = orchestrator.plugin_manager.register_plugin(Declines("declines"))
    assert not registration.done()  # initialize runs in its own task
    await eventually(lambda: orchestrator.plugin_manager.get_plugin("declines") is None)
    assert registration.done()
    assert await registration is False  # awaiting late still tells the outcome
    status = await orchestrator.get_system_status()
    assert "declines" not in status["plugins"]
    # The name is free again.
    assert await orchestrator.plugin_manager.register_plugin(Recorder("declines"))
