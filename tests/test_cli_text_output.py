"""The CLI's text output for people (tables and ``tap``'s event lines), against a running core."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from hivebus import HiveClient
from processes import run, spawn

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def hivebus_settings() -> dict[str, Any]:
    return {"plugins": ["audit"], "plugin_autoload": True}


async def test_tables_and_tap_lines(hive: HiveClient, make_agent: Any, tmp_path: Any):
    url = hive.config.nats_url
    assert url is not None
    await make_agent("lister", ["ls"], max_tasks=2)
    tap = spawn("tap", "--nats", url, "--count", "2", cwd=tmp_path)
    try:
        await tap.until("# tapping")
        await hive.delegate("t", ["ls"], task_id="shown", wait=True)
        assigned = await tap.until("task.assigned")
        completed = await tap.until("task.completed")
    finally:
        tap.stop()
    time_ = r"\d\d:\d\d:\d\d\.\d{3}"
    assert re.fullmatch(rf"{time_} task\.assigned +task=shown agent=lister attempt=1", assigned)
    assert re.fullmatch(
        rf"{time_} task\.completed +task=shown agent=lister duration_ms=\S+", completed
    )

    def text(*args: str) -> str:
        result = run(*args, "--nats", url)
        assert result.returncode == 0, result.stderr
        return result.stdout

    status, agents, tasks, plugins = await asyncio.gather(
        *(asyncio.to_thread(text, cmd) for cmd in ("status", "agents", "tasks", "plugins"))
    )
    assert "healthy" in status
    assert re.search(r"^AGENT\s+ROLE\s+", agents, re.MULTILINE)
    assert re.search(r"^lister\s+worker\s+", agents, re.MULTILINE)
    assert re.search(r"^shown\s+.*completed", tasks, re.MULTILINE)
    assert re.search(r"^audit\s+", plugins, re.MULTILINE)
    empty = await asyncio.to_thread(text, "tasks", "--status", "failed")
    assert empty.rstrip().endswith("(none)")
