"""The wire contract from another language: ``tests/js/contract.mjs`` (nats.js, written from
subjects.md alone) runs each scenario against a real core.

A scenario is a function in contract.mjs's ``SCENARIOS``; add it to ``SCENARIOS`` here too.
Skipped where there is no Node.js (CI has it); ``.ci/run`` installs the locked packages with
``npm ci``, and so does the first test here when ``node_modules`` is missing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hivebus import Core

JS = Path(__file__).parent / "js"
SCENARIOS = ["progress", "cancel", "retries", "delay", "dependencies", "concurrency"]
RUN_TIMEOUT_S = 60.0

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` to run the scenarios with, its packages installed from the lock."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    if not (JS / "node_modules" / "nats").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed, and tests/js/node_modules is missing")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=300)
    return node


@pytest.fixture(params=["memory", "jetstream", "prefixed"])
def hivebus_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "prefixed":
        return {"prefix": "js.bus"}
    return {"state": request.param}


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_a_nats_js_client_follows_the_contract(node: str, hivebus_core: Core, scenario: str):
    config = hivebus_core.config
    env = {
        **os.environ,
        "HIVEBUS_NATS_URL": config.nats_url or "",
        "HIVEBUS_PREFIX": config.prefix,
    }
    # The core runs in this event loop: the script must run beside it, not block it.
    process = await asyncio.create_subprocess_exec(
        node,
        "contract.mjs",
        scenario,
        cwd=JS,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    report = (out + err).decode(errors="replace")
    assert process.returncode == 0, report
    assert f"ok: {scenario}" in report


async def test_the_scenario_list_matches(node: str):
    process = await asyncio.create_subprocess_exec(
        node, "contract.mjs", "--list", cwd=JS, stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(RUN_TIMEOUT_S):
        out, _ = await process.communicate()
    assert out.decode().split() == SCENARIOS, "add the new scenario to SCENARIOS here too"
