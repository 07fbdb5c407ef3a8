"""The task rules from the command line, as a person types them (a process of its own)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from conftest import eventually
from hivebus import Core, HiveClient, Offer, TaskStatus
from processes import hivebus_env


async def _hivebus(core: Core, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hivebus.cli", *args]
    if args[0] != "--help":
        command += ["--nats", core.config.nats_url]
    return await asyncio.to_thread(
        subprocess.run,
        command,
        capture_output=True,
        text=True,
        timeout=60,
        env=hivebus_env(),
        check=False,
    )


async def test_delegate_takes_the_task_rules(hivebus_core: Core, hive: HiveClient):
    first = await _hivebus(hivebus_core, "delegate", "--cap", "x", "--id", "first", "--json")
    assert first.returncode == 0, first.stderr
    done = await _hivebus(
        hivebus_core,
        "delegate",
        "--cap",
        "x",
        "--id",
        "second",
        "--depends-on",
        "first",
        "--retry",
        "4",
        "--backoff",
        "0.5",
        "--concurrency",
        "repo:acme=2",
        "--tenant",
        "acme",
        "--require",
        "worker-1",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "blocked"
    task = await hive.get("second")
    assert task.depends_on == ["first"]
    assert task.retry is not None
    assert (task.retry.max_attempts, task.retry.backoff_s) == (4, 0.5)
    assert task.concurrency is not None
    assert (task.concurrency.key, task.concurrency.limit) == ("repo:acme", 2)
    assert (task.tenant, task.require_agent) == ("acme", "worker-1")

    later = await _hivebus(hivebus_core, "delegate", "--id", "later", "--delay", "60")
    assert later.returncode == 0, later.stderr
    assert "later scheduled" in later.stdout
    assert (await hive.get("later")).status is TaskStatus.SCHEDULED
    status = await _hivebus(hivebus_core, "status")
    assert status.returncode == 0, status.stderr
    assert "scheduled=1, blocked=1" in status.stdout


async def test_mistaken_task_rules_get_one_line_and_no_task(hivebus_core: Core, hive: HiveClient):
    for args, code, said in [
        (("--concurrency", "no-limit"), 2, "give KEY=LIMIT"),
        (("--retry", "zero"), 2, "'zero' is not a whole number"),
        (("--delay", "-5"), 2, "seconds cannot be negative"),
        (("--depends-on", "ghost"), 1, "invalid_request: depends_on: no task 'ghost'"),
    ]:
        run = await _hivebus(hivebus_core, "delegate", "--id", "mistake", *args)
        assert run.returncode == code, (args, run.stderr)
        assert "Traceback" not in run.stderr
        assert said in run.stderr.strip().splitlines()[-1], run.stderr
    assert [t.task_id for t in await hive.tasks()] == []


async def test_task_retry_brings_a_dead_task_back_and_task_get_shows_its_history(
    hivebus_core: Core, hive: HiveClient, make_agent
):
    async def fails_once(task: Offer) -> str:
        if task.attempt == 1:
            raise RuntimeError("first try fails")
        return "fine"

    await make_agent("worker-1", ["x"], fails_once)
    await hive.delegate("t", ["x"], task_id="once", retry={"max_attempts": 1})

    async def dead() -> bool:
        return (await hive.get("once")).status is TaskStatus.DEAD

    await eventually(dead)
    listed = await _hivebus(hivebus_core, "tasks", "--status", "dead", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [t["task_id"] for t in json.loads(listed.stdout)] == ["once"]
    shown = await _hivebus(hivebus_core, "task", "get", "once")
    assert "attempt 1 by worker-1 failed" in shown.stdout
    assert "RuntimeError: first try fails" in shown.stdout

    retried = await _hivebus(hivebus_core, "task", "retry", "once")
    assert retried.returncode == 0, retried.stderr

    async def completed() -> bool:
        return (await hive.get("once")).status is TaskStatus.COMPLETED

    await eventually(completed)
    again = await _hivebus(hivebus_core, "task", "retry", "once")
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1].startswith("hivebus: invalid_state:")
