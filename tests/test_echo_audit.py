"""The echo-audit plugin, installed as its own distribution and found by entry point."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import eventually


@pytest.fixture
def audit_file(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "events.jsonl"


@pytest.fixture
def hivebus_settings(audit_file: Path) -> dict[str, Any]:
    return {
        "plugins": ["echo-audit"],
        "plugin_config": {"echo-audit": {"path": str(audit_file)}},
    }


def test_echo_audit_is_an_installed_entry_point():
    found = {ep.name: ep for ep in entry_points(group="hivebus")}
    assert found["echo-audit"].dist is not None
    assert found["echo-audit"].dist.name == "hivebus-echo-audit"


async def test_every_lifecycle_event_lands_in_the_audit_file(hive, make_agent, audit_file):
    await make_agent("auditor-1", ["x"])
    done = await hive.delegate("t", ["x"], wait=True, wait_timeout=5)

    def events() -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in audit_file.read_text().splitlines()]

    await eventually(lambda: len(events()) >= 3)  # delivered off the request path
    assert [e["event"] for e in events()][:3] == [
        "agent.registered",
        "task.assigned",
        "task.completed",
    ]
    assert events()[2]["task_id"] == done.task_id
    plugins = {p.name: p for p in await hive.plugins()}
    assert plugins["echo-audit"].health == "healthy"
    assert "hivebus_event" in plugins["echo-audit"].hooks
    status = await hive.status()
    assert status["extensions"]["echo-audit"]["events_written"] >= 3
