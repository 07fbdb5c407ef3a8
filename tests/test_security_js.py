"""Another language on a secure bus: a nats.js agent and delegator with their credentials
files alone (the npm package ``nats``, installed into a temporary directory)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hivebus import HiveClient
from hivebus_hookspecs.models import TaskStatus
from secure_bus import SecureBus, make_auth_dir, secure_bus

pytestmark = pytest.mark.timeout(180)

SCRIPT = Path(__file__).parent / "js" / "secure_hive.mjs"


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the JavaScript client")
    where = tmp_path_factory.mktemp("node")
    (where / "package.json").write_text('{"name": "hivebus-js-test", "private": true}')
    try:
        subprocess.run(
            [npm, "install", "--silent", "--no-audit", "--no-fund", "nats@2"],
            cwd=where, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"npm could not install nats: {exc}")
    shutil.copy(SCRIPT, where / SCRIPT.name)
    return where


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SecureBus]:
    async with secure_bus(make_auth_dir(tmp_path / "auth"), tmp_path / "nats") as secure:
        yield secure


class Node:
    def __init__(self, node_dir: Path, *args: str) -> None:
        self.popen = subprocess.Popen(
            ["node", SCRIPT.name, *args],
            cwd=node_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    async def line(self, timeout: float = 20.0) -> str:
        assert self.popen.stdout is not None
        async with asyncio.timeout(timeout):
            return (await asyncio.to_thread(self.popen.stdout.readline)).strip()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@pytest.fixture
def node(node_dir: Path) -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for process in started:
        process.stop()


async def test_a_javascript_agent_and_delegator_work_with_their_credentials(
    bus: SecureBus, node_dir: Path, node: list[Node]
):
    creds = bus.directory.creds_path
    url = bus.server.url
    agent = Node(node_dir, "agent", str(creds("coder-a")), url, "coder-a", "python")
    node.append(agent)
    assert await agent.line() == "ready coder-a"
    # A Python delegator, a JavaScript agent.
    async with HiveClient(config=bus.config("carol")) as hive:
        done = await hive.delegate("t", ["python"], payload="from python", wait=True)
    assert (done.status, done.result) == (TaskStatus.COMPLETED, "FROM PYTHON (js)")
    # A JavaScript delegator (delegate only: it reads its own task as its delegator).
    delegator = Node(node_dir, "delegate", str(creds("alice")), url, "python", '"from js"')
    node.append(delegator)
    task = json.loads(await delegator.line())
    assert (task["status"], task["result"]) == ("completed", "FROM JS (js)")
    assert task["metadata"]["delegated_by"] == "alice"
    record = await bus.audited(principal="coder-a", operation="task-complete")
    assert record["outcome"] == "ok"
