"""Shared helpers; the fixtures themselves come from the ``hivebus.testing`` pytest plugin."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

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


# --- no process outlives the run ------------------------------------------------------------
#
# Every process the tests start inherits this variable (``processes.hivebus_env`` drops only
# ``HIVEBUS_*``), and so do their children: a ``sleep`` orphaned by a SIGKILLed agent is found
# by it even after it was re-parented away from pytest.

RUN_MARK = "PYTEST_HIVEBUS_RUN"
SURVIVOR_GRACE_S = 10.0


def pytest_configure(config: pytest.Config) -> None:
    os.environ[RUN_MARK] = uuid.uuid4().hex


def _marked_processes(mark: str) -> dict[int, str]:
    """pid -> command line of every live process (not this one) carrying ``mark``."""
    needle = f"{RUN_MARK}={mark}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            status = (entry / "stat").read_text()
            if status.rsplit(")", 1)[1].split()[0] == "Z":
                continue  # exited, only waiting to be reaped
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        found[int(entry.name)] = cmdline.strip()
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    mark = os.environ.get(RUN_MARK)
    if mark is None or not Path("/proc").is_dir():
        return
    deadline = time.monotonic() + SURVIVOR_GRACE_S  # processes told to stop may still be exiting
    while (survivors := _marked_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not survivors:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(survivors)} process(es) started by the tests outlived the run:"]
    lines += [f"  pid {pid}: {cmd}" for pid, cmd in sorted(survivors.items())]
    for pid in survivors:  # ours, by pid: leave the machine clean after reporting them
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line, red=True, bold=True)
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
