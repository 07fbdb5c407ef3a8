"""``hivebus bench --quick`` end to end: a well-formed report, never a judgement of the numbers.

Wall time on a shared machine is not a test; this only proves the harness runs every scenario
against a real core and writes the report legacy dashboards and our own tooling read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HIVEBUS = [sys.executable, "-c", "import sys; from hivebus.cli import main; sys.exit(main())"]

LEGACY_KEYS = {"summary", "benchmark_results", "system_info", "configuration", "timestamp"}
REQUIREMENTS = {
    "initialization_time",
    "agent_registration_time",
    "concurrent_agents_support",
    "task_delegation_time",
    "memory_usage",
}
FIGURES = {
    "floor",
    "startup",
    "startup_probe",
    "registration",
    "delegation",
    "scale",
    "memory",
    "plugins",
    "variants",
    "heartbeats",
    "jetstream",
}
RATIOS = {
    "registration_p50_vs_echo_p50",
    "delegation_p50_vs_relay_p50",
    "delegation_rate_vs_relay_rate",
    "scale_large_vs_small_p50",
    "plugins_all_vs_none_p50",
    "jetstream_delegation_p50_vs_memory_p50",
    "jetstream_delegation_rate_vs_memory_rate",
    "jetstream_registration_p50_vs_memory_p50",
    "jetstream_delegation_p50_vs_durable_floor",
}
JETSTREAM = {"floor", "startup", "memory", "registration", "delegation", "writes_per_delegation"}


def _bench_processes() -> list[str]:
    """Command lines of bench children still alive (there must be none after a run).

    Only this environment's: another checkout benchmarking on the same machine is not ours.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "hivebus_bench." in cmdline and cmdline.startswith(sys.executable):
            found.append(cmdline)
    return found


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_bench_writes_a_well_formed_report(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVEBUS_")}
    done = subprocess.run(
        [*HIVEBUS, "bench", "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "figure" in done.stdout
    assert "legacy summary:" in done.stdout

    report = json.loads(output.read_text())
    assert LEGACY_KEYS | {"figures", "ratios", "goals"} <= set(report)
    summary = report["summary"]
    assert summary["overall_status"] in {"PASS", "FAIL"}
    assert set(summary["critical_requirements"]) == REQUIREMENTS
    for requirement in summary["critical_requirements"].values():
        assert {"threshold", "actual", "unit", "passed", "measured_as"} <= set(requirement)
        assert isinstance(requirement["passed"], bool)

    results = report["benchmark_results"]
    assert results
    for result in results:
        assert set(result) == {"name", "duration_ms", "success", "details", "errors"}
        assert isinstance(result["duration_ms"], float)
        assert result["success"] is True, result["errors"]

    assert set(report["figures"]) >= FIGURES
    # The same core with its state in JetStream, measured beside the in-memory one: every
    # delegation of the 256-in-flight phase was assigned (none left queued), or the
    # scenario would have failed above.
    jetstream = report["figures"]["jetstream"]
    assert set(jetstream) >= JETSTREAM
    assert set(jetstream["delegation"]) >= {"sequential", "concurrent", "cycles"}
    assert jetstream["delegation"]["concurrent"]["failures"] == 0
    assert set(report["ratios"]) >= RATIOS
    assert all(isinstance(v, float) for v in report["ratios"].values())
    for goal in report["goals"]:
        assert {"goal", "target", "value", "met"} <= set(goal)
    assert "jetstream_delegation_p50_vs_memory_p50" in {g["source"] for g in report["goals"]}
    assert report["configuration"]["quick"] is True
    assert "thresholds" in report["configuration"]
    assert report["system_info"]["event_loop"] == "asyncio"
    assert _bench_processes() == []

    # Several runs combine into their medians: two copies of one run give that run's figures.
    combined_path = tmp_path / "combined.json"
    combine = [sys.executable, "-m", "hivebus_bench.combine", str(output), str(output)]
    merged = subprocess.run(
        [*combine, "--output", str(combined_path)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert merged.returncode == 0, merged.stderr[-4000:]
    combined = json.loads(combined_path.read_text())
    assert combined["figures"] == report["figures"]
    assert combined["ratios"] == report["ratios"]
    assert combined["system_info"]["runs"] == 2
