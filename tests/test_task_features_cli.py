"""The task rules from the command line, as a person types them (a process of its own)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from hivebus import Core, HiveClient, TaskStatus
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
