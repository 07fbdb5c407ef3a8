"""The ``hivebus`` command, run as a user runs it: real processes, real nats-server."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
from hivebus.cli.exec_agent import progress_line
from hivebus.server import free_port
from processes import run, spawn

pytestmark = pytest.mark.timeout(90)

UPPER = [sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"]


@pytest.fixture
def bus(tmp_path: Path):
    """``hivebus up`` with its embedded nats-server, as the README's first command."""
    port = free_port()
    data = str(tmp_path / "data")
    # performance would bind its fixed metrics port: not what these tests are about
    up = spawn("up", "--port", str(port), "--data-dir", data, "-p", "no:performance", cwd=tmp_path)
    up.wait_for("serving on")
    yield f"nats://127.0.0.1:{port}", up
    up.stop()


def test_up_agent_delegate_and_tap_show_a_task_flow(bus):
    url, _ = bus
    tap = spawn("tap", "--nats", url, "--count", "3", "--json")
    tap.wait_for("# tapping")
    agent = spawn("agent", "--nats", url, "--id", "shout-1", "--cap", "text", "--", *UPPER)
    agent.wait_for("ready")
    try:
        done = run("delegate", "--nats", url, "--cap", "text", "--payload", '"hi"', "--wait")
        assert done.returncode == 0, done.stderr
        assert "completed by shout-1" in done.stdout
        assert '"HI"' in done.stdout
        events = [json.loads(tap.wait_for('"subject"')) for _ in range(3)]
        assert [e["data"]["event"] for e in events] == [
            "agent.registered",
            "task.assigned",
            "task.completed",
        ]
        assert tap.popen.wait(10) == 0
    finally:
        agent.stop()
        tap.stop()


def test_inspection_commands_print_tables_and_json(bus):
    url, _ = bus
    agent = spawn("agent", "--nats", url, "--id", "lister", "--cap", "ls", "--", "true")
    agent.wait_for("ready")
    try:
        status = run("status", "--nats", url, "--json")
        assert status.returncode == 0, status.stderr
        body = json.loads(status.stdout)
        assert body["health_status"] == "healthy"
        assert body["agents"]["total"] == 1
        agents = run("agents", "--nats", url)
        assert "lister" in agents.stdout
        assert "AGENT" in agents.stdout
        plugins = run("plugins", "--nats", url, "--json")
        assert "audit" in {p["name"] for p in json.loads(plugins.stdout)}
        queued = run("delegate", "--nats", url, "--cap", "nobody", "--id", "waiting")
        assert "task waiting queued" in queued.stdout
        tasks = run("tasks", "--nats", url, "--status", "queued")
        assert "waiting" in tasks.stdout
    finally:
        agent.stop()


def test_a_failing_command_fails_the_task_and_the_delegate_exit_code(bus):
    url, _ = bus
    fail = [sys.executable, "-c", "import sys; sys.exit('broken tool')"]
    agent = spawn("agent", "--nats", url, "--id", "flaky", "--cap", "f", "--", *fail)
    agent.wait_for("ready")
    try:
        done = run("delegate", "--nats", url, "--cap", "f", "--wait", "--json")
        assert done.returncode == 1
        task = json.loads(done.stdout)
        assert task["status"] == "failed"
        assert "broken tool" in task["error"]
    finally:
        agent.stop()


def test_ctrl_c_stops_the_core_and_the_embedded_server(bus):
    url, up = bus
    up.signal(signal.SIGINT)
    up.wait_for("hivebus: stopped")
    assert up.popen.wait(10) == 0
    gone = run("status", "--nats", url)
    assert gone.returncode == 1
    assert f"cannot reach NATS at {url}: connection refused" in gone.stderr


def test_up_joins_a_nats_server_that_already_listens(nats_server, tmp_path):
    up = spawn("up", "--port", str(nats_server.port), cwd=tmp_path)
    try:
        up.wait_for("joining it as a replica")
        up.wait_for("serving on")
    finally:
        up.stop()


def test_client_commands_explain_when_no_core_answers(nats_server):
    result = run("status", "--nats", nats_server.url)
    assert result.returncode == 1
    assert "no hivebus core answers" in result.stderr


def test_a_bad_configuration_is_reported_clearly(tmp_path):
    config = tmp_path / "hivebus.toml"
    config.write_text("max_agents = -3\n")
    result = run("up", "--config", str(config))
    assert result.returncode == 2
    assert "max_agents" in result.stderr


REPORTER = [
    sys.executable,
    "-c",
    "import sys, time\n"
    "sys.stdin.read()\n"
    "print('HIVEBUS_PROGRESS 0.5 half way', file=sys.stderr, flush=True)\n"
    "print('a note for the log', file=sys.stderr, flush=True)\n"
    "time.sleep(0.2)\n"
    "print('HIVEBUS_PROGRESS - nearly there', file=sys.stderr, flush=True)\n"
    "sys.exit(sys.argv[1] if len(sys.argv) > 1 else 0)",
]


def test_a_command_reports_progress_and_delegate_wait_shows_it(bus):
    """``HIVEBUS_PROGRESS`` lines on a command's stderr become ``task.progress`` reports;
    ``delegate --wait`` prints them on stderr, so ``--json`` keeps stdout one JSON document."""
    url, _ = bus
    agent = spawn("agent", "--nats", url, "--id", "reporter", "--cap", "p", "--", *REPORTER)
    agent.wait_for("ready")
    failing = [*REPORTER, "gave up"]
    quitter = spawn("agent", "--nats", url, "--id", "quitter", "--cap", "q", "--", *failing)
    quitter.wait_for("ready")
    try:
        done = run("delegate", "--nats", url, "--cap", "p", "--wait", "--json")
        assert done.returncode == 0, done.stderr
        task = json.loads(done.stdout)
        assert (task["progress"], task["progress_message"]) == (None, "nearly there")
        lines = [line for line in done.stderr.splitlines() if " progress" in line]
        assert [line.split(" ", 1)[1] for line in lines] == [
            "progress 50% half way",
            "progress nearly there",
        ]
        failed = json.loads(run("delegate", "--nats", url, "--cap", "q", "--wait", "--json").stdout)
        assert failed["status"] == "failed"
        assert "a note for the log" in failed["error"]
        assert "gave up" in failed["error"]
        assert "HIVEBUS_PROGRESS" not in failed["error"]  # reports are not log lines
    finally:
        agent.stop()
        quitter.stop()


@pytest.mark.parametrize(
    ("line", "report"),
    [
        ("0.4 linking", (0.4, "linking")),
        ("1", (1.0, None)),
        ("- waiting for the lock", (None, "waiting for the lock")),
        ("waiting for the lock", (None, "waiting for the lock")),
        ("1.5 too far", (None, "1.5 too far")),
        ("nan", (None, "nan")),
        ("", (None, None)),
    ],
)
def test_progress_lines_a_command_may_print(line: str, report: tuple[float | None, str | None]):
    assert progress_line(line) == report
