"""The CLI as a person meets it: every wrong input is one clear line, never a traceback.

Each mistake runs ``hivebus`` as a real process. Exit code 2 means the user can fix the
command line or the configuration; 1 means the bus, the core or the task said no.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hivebus.cli import build_parser
from hivebus.server import EmbeddedServer, free_port
from processes import HIVEBUS, hivebus_env, run, spawn

pytestmark = pytest.mark.timeout(120)

USAGE, FAILURE = 2, 1


@dataclass(frozen=True)
class Mistake:
    args: tuple[str, ...]
    exit_code: int
    says: str
    env: tuple[tuple[str, str], ...] = ()


MISTAKES: dict[str, Mistake] = {
    # --- arguments, refused before anything connects
    "payload in plain words": Mistake(
        ("delegate", "--payload", "plain words"), USAGE, "--payload: not JSON"
    ),
    "unknown task status": Mistake(("tasks", "--status", "bogus"), USAGE, "unknown status 'bogus'"),
    "unknown priority": Mistake(
        ("delegate", "--priority", "urgent"), USAGE, "priority must be one of low"
    ),
    "priority number not in the scale": Mistake(
        ("delegate", "--priority", "7"), USAGE, "priority must be one of"
    ),
    "zero limit": Mistake(("tasks", "--limit", "0"), USAGE, "it must be 1 or more"),
    "limit in words": Mistake(("tasks", "--limit", "many"), USAGE, "'many' is not a whole number"),
    "zero timeout": Mistake(("delegate", "--wait", "--timeout", "0"), USAGE, "seconds above 0"),
    "task id with spaces": Mistake(("delegate", "--id", "two words"), USAGE, "is not a task id"),
    "agent id with spaces": Mistake(
        ("agent", "--id", "my agent", "--", "true"), USAGE, "is not an agent id"
    ),
    "agent without a command": Mistake(("agent", "--id", "a1"), USAGE, "give the command after --"),
    "agent without an id": Mistake(("agent", "--", "true"), USAGE, "required: --id"),
    "http URL": Mistake(("status", "--nats", "http://127.0.0.1:4222"), USAGE, "is not a NATS URL"),
    "URL without a host": Mistake(("status", "--nats", "nats://"), USAGE, "names no host"),
    "http URL in the environment": Mistake(
        ("status",),
        USAGE,
        "nats_url: 'http://x' is not a NATS URL",
        (("HIVEBUS_NATS_URL", "http://x"),),
    ),
    "number in words in the environment": Mistake(
        ("status",), USAGE, "invalid configuration: max_agents", (("HIVEBUS_MAX_AGENTS", "lots"),)
    ),
    "port out of range": Mistake(("up", "--port", "70000"), USAGE, "is not a port"),
    "unknown log level": Mistake(
        ("up", "--log-level", "chatty"), USAGE, "invalid choice: 'CHATTY'"
    ),
    "unknown command": Mistake(("frobnicate",), USAGE, "invalid choice: 'frobnicate'"),
    "unknown event loop": Mistake(("up", "--loop", "trio"), USAGE, "invalid choice: 'trio'"),
    "unknown event loop in the environment": Mistake(
        ("up",), USAGE, "event loop 'trio': choose from auto", (("HIVEBUS_EVENT_LOOP", "trio"),)
    ),
    "task get without an id": Mistake(("task", "get"), USAGE, "required: ID"),
    "unknown task sub-command": Mistake(("task", "frobnicate", "t1"), USAGE, "invalid choice"),
    "cancel with a bad id": Mistake(("cancel", "not/an/id"), USAGE, "is not a task id"),
    "unknown option": Mistake(("status", "--colour"), USAGE, "unrecognized arguments: --colour"),
    # --- configuration files
    "config file missing": Mistake(
        ("status", "--config", "{tmp}/missing.toml"), USAGE, "config file not found"
    ),
    "config file malformed": Mistake(
        ("status", "--config", "{tmp}/malformed.toml"), USAGE, "cannot read the config file"
    ),
    "config value out of range": Mistake(
        ("up", "--config", "{tmp}/negative.toml"), USAGE, "max_agents: Input should be greater"
    ),
    "config setting unknown": Mistake(
        ("status", "--config", "{tmp}/unknown.toml"), USAGE, "bogus_key: no such setting"
    ),
    # --- the bus is not where the user thinks
    "nothing listens": Mistake(
        ("status", "--nats", "nats://127.0.0.1:{closed}"),
        FAILURE,
        "cannot reach NATS at nats://127.0.0.1:{closed}: connection refused",
    ),
    "unknown host": Mistake(
        ("agents", "--nats", "nats://no-such-host.invalid:4222"), FAILURE, "unknown host"
    ),
    "not NATS on the port": Mistake(
        ("status", "--nats", "nats://127.0.0.1:{http}"),
        FAILURE,
        "something that is not a NATS server listens there",
    ),
    "up on a port taken by something else": Mistake(
        ("up", "--port", "{http}", "--data-dir", "{tmp}/data"), FAILURE, "in use and not by NATS"
    ),
    "NATS without a core": Mistake(
        ("status", "--nats", "{nats}"), FAILURE, "no hivebus core answers"
    ),
    # --- the core says no
    "nobody can take it, and no queueing": Mistake(
        ("delegate", "--nats", "{bus}", "--cap", "nobody", "--no-queue"),
        FAILURE,
        "hivebus: no_agent_available:",
    ),
    "get an unknown task": Mistake(
        ("task", "get", "no-such-task", "--nats", "{bus}"), FAILURE, "unknown_task: no task"
    ),
    "cancel an unknown task": Mistake(
        ("cancel", "no-such-task", "--nats", "{bus}"), FAILURE, "unknown_task: no task"
    ),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("mistakes")
    (tmp / "malformed.toml").write_text("max_agents = \n")
    (tmp / "negative.toml").write_text("max_agents = -3\n")
    (tmp / "unknown.toml").write_text("bogus_key = 1\n")
    return tmp


@pytest.fixture(scope="module")
def not_nats() -> Iterator[int]:
    """A TCP listener that answers like a web server: what a wrong port usually finds."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


@pytest.fixture(scope="module")
def bare_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(port=0, data_dir=tmp_path_factory.mktemp("bare"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def core_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``hivebus up`` with its embedded nats-server, for the mistakes a core answers."""
    tmp = tmp_path_factory.mktemp("core")
    port = free_port()
    up = spawn(
        "up", "--port", str(port), "--data-dir", str(tmp / "d"), "-p", "no:performance", cwd=tmp
    )
    up.wait_for("serving on")
    yield f"nats://127.0.0.1:{port}"
    up.stop()


@pytest.mark.parametrize("name", list(MISTAKES))
def test_a_mistake_is_one_clear_line(
    name: str, files: Path, not_nats: int, bare_nats: EmbeddedServer, core_bus: str
):
    mistake = MISTAKES[name]
    places = {"tmp": str(files), "closed": str(free_port()), "http": str(not_nats)}
    places.update(nats=bare_nats.url, bus=core_bus)
    args = [arg.format(**places) for arg in mistake.args]
    done = run(*args, **dict(mistake.env))
    lines = done.stderr.splitlines()
    assert "Traceback" not in done.stderr + done.stdout
    assert len(lines) == 1, done.stderr
    assert mistake.says.format(**places) in lines[0]
    assert lines[0].startswith("hivebus"), lines[0]
    assert done.returncode == mistake.exit_code, done.stderr


def test_the_list_keeps_at_least_twenty_mistakes():
    assert len(MISTAKES) >= 20


def _options(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield f"{path} {'/'.join(action.option_strings) or action.dest}", action


def test_every_option_of_every_command_has_help():
    missing = [where for where, action in _options(build_parser(), "hivebus") if not action.help]
    assert missing == []


# --- the commands around one task -------------------------------------------------------------

UPPER = [sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    up = spawn(
        "up",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path / "d"),
        "-p",
        "no:performance",
        cwd=tmp_path,
    )
    up.wait_for("serving on")
    yield f"nats://127.0.0.1:{port}"
    up.stop()


def test_task_get_and_cancel_by_id(bus: str):
    queued = run("delegate", "--nats", bus, "--cap", "nobody", "--id", "later")
    assert queued.returncode == 0, queued.stderr
    assert "task later queued" in queued.stdout
    assert queued.stderr == (
        "hivebus: warning: no live agent offers nobody; "
        "the task waits in the queue until one registers\n"
    )
    shown = run("task", "get", "later", "--nats", bus, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "queued"
    cancelled = run("cancel", "later", "--nats", bus)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith("task later cancelled")
    again = run("task", "get", "later", "--nats", bus)
    assert again.stdout.startswith("task later cancelled")
    unknown = run("task", "get", "never", "--nats", bus)
    assert (unknown.returncode, unknown.stderr) == (1, "hivebus: unknown_task: no task 'never'\n")


def test_a_wait_that_times_out_says_where_the_task_is(bus: str):
    done = run(
        "delegate", "--nats", bus, "--cap", "nobody", "--id", "slow", "--wait", "--timeout", "1"
    )
    assert done.returncode == 1
    warning, timeout = done.stderr.splitlines()
    assert "no live agent offers nobody" in warning
    assert timeout.startswith(
        "hivebus: timed out after 1s waiting; task slow is queued and goes on"
    )
    assert "hivebus cancel slow" in timeout


def test_a_wait_on_a_busy_agent_names_the_agent(bus: str):
    agent = spawn("agent", "--nats", bus, "--id", "sleepy", "--cap", "nap", "--", *SLEEPER)
    agent.wait_for("ready")
    try:
        done = run(
            "delegate", "--nats", bus, "--cap", "nap", "--id", "nap1", "--wait", "--timeout", "1"
        )
        assert done.returncode == 1
        assert done.stderr == (
            "hivebus: timed out after 1s waiting; task nap1 is assigned to sleepy and goes on "
            "(hivebus task get nap1 to see it, hivebus cancel nap1 to stop it)\n"
        )
    finally:
        agent.stop()


def test_ctrl_c_while_waiting_says_the_task_goes_on(bus: str):
    waiting = subprocess.Popen(
        [*HIVEBUS, "delegate", "--nats", bus, "--cap", "nobody", "--id", "patient", "--wait"],
        env=hivebus_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert waiting.stderr is not None
        assert "no live agent offers nobody" in waiting.stderr.readline()
        # The warning comes before the delegation: wait until the core knows the task.
        for _ in range(200):
            if run("task", "get", "patient", "--nats", bus).returncode == 0:
                break
        waiting.send_signal(signal.SIGINT)
        out, err = waiting.communicate(timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            waiting.kill()
        waiting.wait()
    assert waiting.returncode == 130
    assert out == ""
    assert err == (
        "hivebus: stopped waiting; task patient is queued and goes on "
        "(hivebus task get patient to see it, hivebus cancel patient to stop it)\n"
    )
    still = run("task", "get", "patient", "--nats", bus, "--json")
    assert json.loads(still.stdout)["status"] == "queued"


def test_a_second_up_on_the_same_port_joins_as_a_replica(bus: str, tmp_path: Path):
    port = bus.rsplit(":", 1)[1]
    second = spawn("up", "--port", port, "-p", "no:performance", cwd=tmp_path)
    try:
        second.wait_for(f"a NATS server already listens on {bus}")
        line = second.wait_for("serving on")
        assert "joining it as a replica" in "\n".join(second.lines)
        assert bus in line
    finally:
        assert second.stop() == 0
