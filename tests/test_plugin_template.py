"""``hivebus plugin new``: the distribution it writes installs on its own and passes its tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from processes import run

ROOT = Path(__file__).resolve().parents[1]


def test_the_name_must_be_a_distribution_name(tmp_path: Path):
    refused = run("plugin", "new", "Bad_Name", "--dir", str(tmp_path))
    assert refused.returncode == 2
    assert refused.stdout.strip().splitlines() == [
        "hivebus: plugin name 'Bad_Name': lower-case letters and digits, words joined by '-'"
    ]
    assert list(tmp_path.iterdir()) == []


def test_it_writes_a_complete_distribution_and_will_not_overwrite(tmp_path: Path):
    made = run("plugin", "new", "sla-watch", "--dir", str(tmp_path), "--hivebus-source", str(ROOT))
    assert made.returncode == 0, made.stdout + made.stderr
    target = tmp_path / "hivebus-sla-watch"
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "pyproject.toml",
        "src/hivebus_sla_watch/__init__.py",
        "src/hivebus_sla_watch/py.typed",
        "tests/test_hivebus_sla_watch.py",
    ]
    pyproject = (target / "pyproject.toml").read_text()
    assert 'sla-watch = "hivebus_sla_watch:SlaWatchPlugin"' in pyproject
    assert f'hivebus = {{ path = "{ROOT / "core"}", editable = true }}' in pyproject
    again = run("plugin", "new", "sla-watch", "--dir", str(tmp_path))
    assert again.returncode == 2
    assert "exists already" in again.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_generated_plugin_installs_alone_and_passes_its_own_tests(tmp_path: Path):
    """As the plugin guide says: generate, then `uv run --extra test pytest` in its folder,
    which builds an environment of its own from its pyproject (hivebus from this checkout)."""
    made = run("plugin", "new", "sla-watch", "--dir", str(tmp_path), "--hivebus-source", str(ROOT))
    assert made.returncode == 0, made.stdout + made.stderr
    target = tmp_path / "hivebus-sla-watch"
    uv = shutil.which("uv")
    assert uv is not None
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT"}}
    env["COVERAGE_PROCESS_START"] = ""  # its own environment has no coverage installed
    result = subprocess.run(
        [uv, "run", "--extra", "test", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=target,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 passed" in result.stdout
    assert (target / ".venv").is_dir()  # its own environment, not this one
