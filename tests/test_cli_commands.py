"""Commands other distributions add to ``hivebus`` (entry-point group ``hivebus.commands``).

The command line runs as a user runs it, in a process of its own. The distributions it finds
are real as far as ``importlib.metadata`` is concerned: a ``*.dist-info`` folder beside the
module on the path, or the environment's own site-packages without one distribution's files.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest
from processes import hivebus_env

pytestmark = pytest.mark.timeout(60)

HIVEBUS_MAIN = "from hivebus.cli import main; sys.exit(main())"

HELLO = """
from hivebus_hookspecs import hookimpl


@hookimpl
def hivebus_register_commands(register):
    def configure(parser):
        parser.add_argument("--name", default="world")

    async def run(args):
        print(f"hello {args.name}")
        return 3

    register("hello", help="say hello from a plugin", configure=configure, run=run)
"""

CLASH = """
from hivebus_hookspecs import hookimpl


@hookimpl
def hivebus_register_commands(register):
    register("status", help="not the real status", run=lambda args: 0)
"""

BROKEN = """
from hivebus_hookspecs import hookimpl


@hookimpl
def hivebus_register_commands(register):
    raise RuntimeError("cannot register today")
"""


def _distribution(folder: Path, name: str, module: str, source: str | None) -> None:
    """A distribution ``name`` whose ``hivebus.commands`` entry point is ``module``."""
    if source is not None:
        (folder / f"{module}.py").write_text(source)
    info = folder / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[hivebus.commands]\n{name} = {module}\n")


def _hivebus(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = hivebus_env(**({"PYTHONPATH": str(pythonpath)} if pythonpath else {}))
    return subprocess.run(
        [sys.executable, "-c", f"import sys; {HIVEBUS_MAIN}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def _hivebus_without(dist_name: str, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``hivebus ARGS`` in this environment as if ``dist_name`` had been uninstalled.

    ``site`` becomes a copy of site-packages (symbolic links) without the files the
    distribution's RECORD lists; python runs with ``-S`` so only that copy is on the path.
    """
    dist = distribution(dist_name)
    packages = Path(str(dist.locate_file("")))
    owned = {file.parts[0] for file in dist.files or []}
    assert owned, f"{dist_name} lists no files"
    site.mkdir()
    for entry in packages.iterdir():
        if entry.name not in owned:
            (site / entry.name).symlink_to(entry)
    code = f"import site, sys; site.addsitedir({str(site)!r}); {HIVEBUS_MAIN}"
    return subprocess.run(
        [sys.executable, "-S", "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=hivebus_env(),
        check=False,
    )


def test_a_registered_command_is_in_the_help_and_runs(tmp_path: Path):
    _distribution(tmp_path, "hivebus-hello", "hello_cmd", HELLO)
    usage = _hivebus("--help", pythonpath=tmp_path)
    assert usage.returncode == 0, usage.stderr
    assert "say hello from a plugin" in usage.stdout
    # hivebus-bench, installed in the workspace, is found the same way
    assert "bench" in usage.stdout
    assert usage.stderr == ""

    own = _hivebus("hello", "--help", pythonpath=tmp_path)
    assert "usage: hivebus hello [-h] [--name NAME]" in own.stdout

    hello = _hivebus("hello", "--name", "bee", pythonpath=tmp_path)
    assert (hello.returncode, hello.stdout) == (3, "hello bee\n"), hello.stderr


def test_a_clash_or_a_broken_plugin_costs_one_line_and_the_rest_works(tmp_path: Path):
    _distribution(tmp_path, "hivebus-hello", "hello_cmd", HELLO)
    _distribution(tmp_path, "hivebus-clash", "clash_cmd", CLASH)
    _distribution(tmp_path, "hivebus-broken", "broken_cmd", BROKEN)
    _distribution(tmp_path, "hivebus-gone", "no_such_module", None)

    hello = _hivebus("hello", pythonpath=tmp_path)
    assert (hello.returncode, hello.stdout) == (3, "hello world\n"), hello.stderr
    lines = sorted(hello.stderr.splitlines())
    assert len(lines) == 3, hello.stderr
    broken, clash, gone = lines
    assert "hivebus-broken" in broken
    assert "cannot register today" in broken
    assert "hivebus-clash" in clash
    assert "'status'" in clash
    assert "built-in" in clash
    assert "hivebus-gone" in gone
    assert "no_such_module" in gone

    # the built-in status stays: its own options, not the clashing command's
    status = _hivebus("status", "--help", pythonpath=tmp_path)
    assert status.returncode == 0
    assert "--json" in status.stdout


@pytest.mark.parametrize("args", [["bench"], ["bench", "--quick", "--output", "x.json"]])
def test_bench_without_hivebus_bench_says_how_to_get_it(tmp_path: Path, args: list[str]):
    done = _hivebus_without("hivebus-bench", tmp_path / "site", *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "hivebus bench comes with the hivebus-bench distribution: "
        "uv sync --all-packages, or pip install hivebus-bench\n"
    )
    assert done.stdout == ""


def test_the_help_without_hivebus_bench_lists_no_bench(tmp_path: Path):
    done = _hivebus_without("hivebus-bench", tmp_path / "site", "--help")
    assert done.returncode == 0, done.stderr
    assert "delegate" in done.stdout
    assert "bench" not in done.stdout
