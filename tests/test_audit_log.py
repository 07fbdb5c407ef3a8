"""The audit plugin (entry point ``audit``), installed as its own distribution and found by its
entry point: every lifecycle event as JSON lines under the core's data directory, rotated by
size, pruned by count and age, never blocking the core; and ``hivebus audit --lifecycle``
reading it back by task and agent."""

from __future__ import annotations

import asyncio
import os
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import eventually
from hivebus import Core, HivebusConfig, HiveClient
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS
from nats.aio.client import Client
from processes import run, spawn

pytestmark = pytest.mark.timeout(90)


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("lifecycle.*.jsonl"))


def records(directory: Path) -> list[dict[str, Any]]:
    found = []
    for path in segments(directory):
        found += [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return sorted(found, key=lambda r: r["timestamp"])


async def plugin(hive: HiveClient) -> Any:
    return {p.name: p for p in await hive.plugins()}["audit"]


async def audit_status(hive: HiveClient) -> dict[str, Any]:
    status: dict[str, Any] = (await hive.status())["extensions"]["audit"]
    return status


def test_audit_is_an_installed_entry_point():
    found = {ep.name: ep for ep in entry_points(group="hivebus")}
    assert found["audit"].dist is not None
    assert found["audit"].dist.name == "hivebus-audit-log"
    assert "echo-audit" not in found


class TestByDefault:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {"plugins": ["audit"]}

    async def test_every_lifecycle_event_lands_under_the_data_directory(
        self, hive: HiveClient, make_agent: Any, hivebus_config: HivebusConfig
    ):
        directory = hivebus_config.data_dir / "plugins" / "audit"
        await make_agent("auditor-1", ["x"])
        done = await hive.delegate("t", ["x"], wait=True, wait_timeout=5)

        await eventually(lambda: len(records(directory)) >= 3)  # written off the request path
        assert [e["event"] for e in records(directory)][:3] == [
            "agent.registered",
            "task.assigned",
            "task.completed",
        ]
        assert records(directory)[2]["task_id"] == done.task_id
        assert records(directory)[2]["agent_id"] == "auditor-1"
        [segment] = segments(directory)
        assert segment.name.startswith(f"lifecycle.{hivebus_config.orchestrator_id}.")
        found = await plugin(hive)
        assert found.health == "healthy"
        assert "hivebus_event" in found.hooks
        status = await audit_status(hive)
        assert status["events_written"] >= 3
        assert status["events_dropped"] == 0
        assert status["file"] == str(segment)
        assert not list(Path.cwd().glob("hivebus-audit*.jsonl"))  # never the working directory

    async def test_a_segment_removed_under_the_writer_is_replaced(
        self, hive: HiveClient, make_agent: Any, hivebus_config: HivebusConfig
    ):
        """Another replica's age pruning, or an operator, removed the file being written:
        the next events go to a new segment, not to a file nobody can read."""
        directory = hivebus_config.data_dir / "plugins" / "audit"
        await make_agent("gone-1", ["x"])
        await eventually(lambda: len(records(directory)) >= 1)
        [removed] = segments(directory)
        await asyncio.to_thread(removed.unlink)
        await hive.delegate("t", ["x"], task_id="after", wait=True, wait_timeout=5)
        await eventually(lambda: any(r.get("task_id") == "after" for r in records(directory)))
        [replacement] = segments(directory)
        assert replacement != removed


class TestRotation:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        settings = {"max_file_bytes": 1024, "max_files": 3, "flush_interval_s": 0.05}
        return {"plugins": ["audit"], "plugin_config": {"audit": settings}}

    async def test_segments_rotate_by_size_and_only_the_newest_are_kept(
        self, hive: HiveClient, make_agent: Any, hivebus_config: HivebusConfig
    ):
        directory = hivebus_config.data_dir / "plugins" / "audit"
        await make_agent("rotor-1", ["x"])
        for i in range(30):
            await hive.delegate("t", ["x"], task_id=f"rot-{i}", wait=True, wait_timeout=5)

        async def all_written() -> bool:
            status = await audit_status(hive)
            return bool(status["events_written"] >= 61 and status["events_waiting"] == 0)

        await eventually(all_written)
        status = await audit_status(hive)
        assert status["segments_started"] > 3
        assert status["segments_removed"] == status["segments_started"] - 3
        kept = segments(directory)
        assert len(kept) == 3
        assert all(path.stat().st_size <= 1024 for path in kept)
        # The newest events survive, in order; the oldest went with the pruned segments.
        tasks = [r["task_id"] for r in records(directory) if r["event"] == "task.completed"]
        assert tasks[-1] == "rot-29"
        assert "rot-0" not in tasks


class TestSharedRetention:
    @pytest.fixture
    def other_replica(self, tmp_path: Path) -> list[Path]:
        """Two segments of another replica in the same directory, its older one first."""
        directory = tmp_path / "hivebus" / "plugins" / "audit"
        directory.mkdir(parents=True)
        line = b'{"event": "agent.registered", "timestamp": 1.0}\n'
        paths = [
            directory / f"lifecycle.hivebus-other.2026120{day}T000000000000.jsonl" for day in (1, 2)
        ]
        for path in paths:
            path.write_bytes(line)
        return paths

    @pytest.fixture
    def hivebus_settings(self, other_replica: list[Path]) -> dict[str, Any]:
        settings = {"max_file_bytes": 1024, "max_files": 2, "flush_interval_s": 0.05}
        return {"plugins": ["audit"], "plugin_config": {"audit": settings}}

    async def test_the_count_spares_another_replicas_newest_segment(
        self, hive: HiveClient, make_agent: Any, other_replica: list[Path]
    ):
        """Its newest segment may be the one it writes: removing it would make two replicas
        take turns deleting each other's lines. Older ones count like ours."""
        older, newest = other_replica
        await make_agent("sharer-1", ["x"])
        for i in range(10):
            await hive.delegate("t", ["x"], task_id=f"sh-{i}", wait=True, wait_timeout=5)

        async def rotated() -> bool:
            return bool((await audit_status(hive))["segments_started"] >= 3)

        await eventually(rotated)
        status = await audit_status(hive)
        kept = await asyncio.to_thread(segments, Path(status["directory"]))
        assert kept == sorted([newest, Path(status["file"])])
        assert older not in kept


class TestAgeRetention:
    @pytest.fixture
    def old_segment(self, tmp_path: Path) -> Path:
        """A segment an earlier run left, last written two hours ago."""
        directory = tmp_path / "hivebus" / "plugins" / "audit"
        directory.mkdir(parents=True)
        path = directory / "lifecycle.hivebus-gone.20260101T000000000000.jsonl"
        path.write_bytes(b'{"event": "agent.registered", "timestamp": 1.0}\n')
        two_hours_ago = time.time() - 7200
        os.utime(path, (two_hours_ago, two_hours_ago))
        return path

    @pytest.fixture
    def hivebus_settings(self, old_segment: Path) -> dict[str, Any]:
        return {"plugins": ["audit"], "plugin_config": {"audit": {"max_age_s": 3600}}}

    async def test_a_segment_older_than_max_age_is_removed(
        self, hive: HiveClient, old_segment: Path
    ):
        assert not await asyncio.to_thread(old_segment.exists)
        assert (await audit_status(hive))["segments_removed"] == 1


class TestAFullQueue:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        # The writer runs once a minute: the queue of two fills at once.
        settings = {"queue_size": 2, "flush_interval_s": 60, "check_interval_s": 0.5}
        return {"plugins": ["audit"], "plugin_config": {"audit": settings}}

    async def test_drops_and_counts_events_rather_than_waiting_and_alerts_once(
        self,
        hive: HiveClient,
        make_agent: Any,
        nats_client: Client,
        hivebus_config: HivebusConfig,
    ):
        alerts: list[dict[str, Any]] = []

        async def keep(msg: Any) -> None:
            alerts.append(orjson.loads(msg.data))

        await nats_client.subscribe("events.alert.>", cb=keep)
        await nats_client.flush()
        await make_agent("busy-1", ["x"])
        for i in range(5):
            done = await hive.delegate("t", ["x"], task_id=f"q-{i}", wait=True, wait_timeout=5)
            assert done.status.value == "completed"  # the core goes on serving

        async def dropped() -> bool:
            status = await audit_status(hive)
            return bool(status["events_dropped"] >= 9 and status["events_waiting"] == 2)

        await eventually(dropped)
        assert (await plugin(hive)).health == "healthy"
        # Events lost: one warning while it lasts, resolved once an interval loses none.
        await eventually(lambda: [a["status"] for a in alerts] == ["firing", "resolved"])
        firing, resolved = alerts
        fingerprint = f"audit:events_dropped:{hivebus_config.orchestrator_id}"
        assert (firing["fingerprint"], firing["severity"]) == (fingerprint, "warning")
        assert firing["source"] == "audit"
        assert firing["details"]["lost"] >= 1
        assert resolved["fingerprint"] == fingerprint


class TestBadSettings:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {"plugins": ["audit"], "plugin_config": {"audit": {"max_files": 0, "pth": "x"}}}

    async def test_mark_the_plugin_unhealthy_with_the_reason(self, hive: HiveClient):
        found = await plugin(hive)
        assert found.health == "unhealthy"
        assert "plugin_config.audit" in (found.last_error or "")
        assert "max_files" in (found.last_error or "")
        assert "pth" in (found.last_error or "")


class TestAnUnwritableDirectory:
    @pytest.fixture
    def hivebus_settings(self, tmp_path: Path) -> dict[str, Any]:
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        audit = {"directory": str(blocker / "audit")}
        return {"plugins": ["audit"], "plugin_config": {"audit": audit}}

    async def test_marks_the_plugin_unhealthy_and_the_core_serves(
        self, hive: HiveClient, make_agent: Any
    ):
        found = await plugin(hive)
        assert found.health == "unhealthy"
        assert "a-file" in (found.last_error or "")
        await make_agent("still-1", ["x"])
        done = await hive.delegate("t", ["x"], wait=True, wait_timeout=5)
        assert done.status.value == "completed"


async def test_two_replicas_sharing_a_data_directory_write_their_own_segments(
    nats_server: EmbeddedServer, tmp_path: Path, make_agent: Any
):
    """Each replica writes the events of the transitions it made: the files never clash, and
    together they hold each event once."""
    data_dir = tmp_path / "shared"
    cores = [
        Core(
            HivebusConfig.load(
                **{
                    **TEST_DEFAULTS,
                    "nats_url": nats_server.url,
                    "state": "jetstream",
                    "orchestrator_id": f"replica-{i}",
                    "data_dir": data_dir,
                    "plugins": ["audit"],
                    "plugin_config": {"audit": {"flush_interval_s": 0.05}},
                }
            )
        )
        for i in (1, 2)
    ]
    for core in cores:
        await core.start()
    try:
        async with HiveClient(config=cores[0].config) as hive:
            for i in range(4):
                await make_agent(f"pair-{i}", ["x"])
            ids = [f"pair-task-{i}" for i in range(40)]
            await asyncio.gather(
                *(hive.delegate("t", ["x"], task_id=t, wait=True, wait_timeout=10) for t in ids)
            )
    finally:
        for core in cores:
            await core.stop()  # writes what is left
    directory = data_dir / "plugins" / "audit"
    writers = {path.name.split(".")[1] for path in segments(directory)}
    assert writers == {"replica-1", "replica-2"}
    completed = [r["task_id"] for r in records(directory) if r["event"] == "task.completed"]
    assert sorted(completed) == sorted(ids)  # every task once, whichever replica placed it


class TestReading:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {"plugins": ["audit"], "plugin_config": {"audit": {"flush_interval_s": 0.05}}}

    async def test_hivebus_audit_reads_the_log_by_task_and_by_agent(
        self, hive: HiveClient, make_agent: Any, hivebus_config: HivebusConfig, tmp_path: Path
    ):
        await make_agent("reader-1", ["x"])
        await make_agent("reader-2", ["y"])
        await hive.delegate("t", ["x"], task_id="one", wait=True, wait_timeout=5)
        await hive.delegate("t", ["y"], task_id="two", wait=True, wait_timeout=5)
        await eventually(lambda: len(records(hivebus_config.data_dir / "plugins" / "audit")) >= 6)
        data = str(hivebus_config.data_dir)

        def read(*args: str) -> list[dict[str, Any]]:
            done = run("audit", "--lifecycle", "--data-dir", data, "--json", *args)
            assert done.returncode == 0, done.stderr
            return [orjson.loads(line) for line in done.stdout.splitlines()]

        by_task = await asyncio.to_thread(read, "--task", "one")
        assert [(r["event"], r["task_id"]) for r in by_task] == [
            ("task.assigned", "one"),
            ("task.completed", "one"),
        ]
        by_agent = await asyncio.to_thread(read, "--agent", "reader-2")
        assert [r["event"] for r in by_agent] == [
            "agent.registered",
            "task.assigned",
            "task.completed",
        ]
        # --task alone means the lifecycle log too; the text form is one line per event.
        text = await asyncio.to_thread(run, "audit", "--task", "two", "--data-dir", data)
        assert text.returncode == 0, text.stderr
        lines = text.stdout.splitlines()
        assert len(lines) == 2
        assert "task.completed" in lines[1]
        assert "task=two agent=reader-2" in lines[1]

        only_new = ("--limit", "0", "--data-dir", data)
        follow = spawn("audit", "--lifecycle", "--follow", "--agent", "reader-1", *only_new)
        try:
            await follow.until("# following")
            await hive.delegate("t", ["x"], task_id="three", wait=True, wait_timeout=5)
            line = await follow.until("task.completed")
            assert "task=three agent=reader-1" in line
        finally:
            follow.stop()


def test_a_missing_log_is_one_line_and_exit_2(tmp_path: Path):
    done = run("audit", "--lifecycle", "--data-dir", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert "no lifecycle log in" in line
    assert "nowhere" in line
    mixed = run("audit", "--lifecycle", "--denied", "--data-dir", str(tmp_path))
    assert mixed.returncode == 2
    assert "--denied" in mixed.stderr
    assert "Traceback" not in mixed.stderr
