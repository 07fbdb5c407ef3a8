"""``hivebus auth``, ``hivebus up --auth`` and ``hivebus audit``, run as a user runs them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hivebus.server import free_port
from processes import run, spawn

pytestmark = pytest.mark.timeout(90)

UPPER = [sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"]


def ok(*args: str, **env: str) -> str:
    done = run(*args, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_auth_makes_lists_and_revokes_principals(tmp_path: Path):
    auth = str(tmp_path / "auth")
    assert "hivebus up --auth" in ok("auth", "init", auth)
    ok("auth", "add", "agent", "shout-1", "--cap", "text", "--role", "worker", "--dir", auth)
    ok("auth", "add", "client", "alice", "--can", "delegate,read", "--dir", auth)
    ok("auth", "add", "monitor", "mon", HIVEBUS_AUTH_DIR=auth)
    listed = json.loads(ok("auth", "list", "--dir", auth, "--json"))
    kinds = {p["name"]: p["kind"] for p in listed["principals"]}
    assert kinds == {
        "hivebus-core": "core",
        "shout-1": "agent",
        "alice": "client",
        "mon": "monitor",
    }
    assert "restart or reload" in ok("auth", "revoke", "alice", "--dir", auth)
    table = ok("auth", "list", "--dir", auth)
    assert "revoked: alice" in table
    assert "alice" not in (tmp_path / "auth" / "server.conf").read_text()
    assert not (tmp_path / "auth" / "creds" / "alice.creds").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["auth", "add", "agent", "shout-1"], "exists"),
        (["auth", "add", "client", "bob", "--can", "everything"], "choose from"),
        (["auth", "add", "monitor", "m2", "--cap", "x"], "agents only"),
        (["auth", "add", "agent", "bad.name"], "letters, digits"),
        (["auth", "revoke", "nobody"], "no principal"),
        (["auth", "init"], "already an auth directory"),
    ],
)
def test_auth_mistakes_are_one_clear_line(tmp_path: Path, args: list[str], says: str):
    auth = str(tmp_path / "auth")
    ok("auth", "init", auth)
    ok("auth", "add", "agent", "shout-1", "--dir", auth)
    args = [*args, auth] if args[-1] == "init" else [*args, "--dir", auth]
    done = run(*args)
    assert done.returncode == 2
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_auth_outside_an_auth_directory_says_so(tmp_path: Path):
    done = run("auth", "list", "--dir", str(tmp_path / "none"))
    assert done.returncode == 2
    assert "hivebus auth init" in done.stderr


def test_up_auth_runs_a_secure_bus_that_honest_principals_use(tmp_path: Path):
    auth = str(tmp_path / "auth")
    ok("auth", "init", auth)
    ok("auth", "add", "agent", "shout-1", "--cap", "text", "--dir", auth)
    ok("auth", "add", "client", "alice", "--can", "delegate,read", "--dir", auth)
    ok("auth", "add", "client", "eve", "--dir", auth)
    ok("auth", "add", "monitor", "mon", "--dir", auth)
    creds = tmp_path / "auth" / "creds"
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    up = spawn(
        "up", "--auth", auth, "--port", str(port), "--data-dir", str(tmp_path / "data"),
        "-p", "no:performance", cwd=tmp_path,
    )  # fmt: skip
    agent = None
    try:
        up.wait_for("serving on")
        assert any("secure" in line for line in up.lines)
        agent = spawn(
            "agent", "--nats", url, "--id", "shout-1", "--cap", "text", "--", *UPPER,
            HIVEBUS_CREDS=str(creds / "shout-1.creds"),
        )  # fmt: skip
        agent.wait_for("ready")
        done = run(
            "delegate", "--nats", url, "--creds", str(creds / "alice.creds"),
            "--cap", "text", "--payload", '"hi"', "--wait",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert '"HI"' in done.stdout
        follow = spawn("audit", "--nats", url, "--creds", str(creds / "mon.creds"), "--follow",
                       "--denied", "--limit", "0")  # fmt: skip
        follow.wait_for("# following")
        refused = run("delegate", "--nats", url, "--creds", str(creds / "eve.creds"))
        assert "task-delegate" in follow.wait_for("eve")
        follow.stop()
        assert refused.returncode == 1
        assert "forbidden" in refused.stderr
        audit = run("audit", "--nats", url, "--creds", str(creds / "mon.creds"), "--json")
        assert audit.returncode == 0, audit.stderr
        records = [json.loads(line) for line in audit.stdout.splitlines()]
        seen = {(r["principal"], r["operation"], r["decision"]) for r in records}
        assert ("alice", "task-delegate", "allowed") in seen
        assert ("eve", "task-delegate", "forbidden") in seen
        denied = run(
            "audit", "--nats", url, "--creds", str(creds / "mon.creds"), "--denied",
            "--principal", "eve",
        )  # fmt: skip
        assert "forbidden" in denied.stdout
        assert "alice" not in denied.stdout
        # A change to the principals reaches the running server at once.
        assert "reloaded" in ok("auth", "revoke", "eve", "--dir", auth)
    finally:
        if agent is not None:
            agent.stop()
        up.stop()


def test_up_warns_when_an_open_bus_listens_beyond_loopback(tmp_path: Path):
    port = free_port("0.0.0.0")
    up = spawn(
        "up", "--port", str(port), "--data-dir", str(tmp_path / "data"), "-p", "no:performance",
        HIVEBUS_HOST="0.0.0.0",
    )  # fmt: skip
    try:
        assert "hivebus auth init" in up.wait_for("WARNING: an open bus")
        up.wait_for("serving on")
    finally:
        up.stop()


def test_up_auth_refuses_a_directory_made_for_another_prefix(tmp_path: Path):
    auth = str(tmp_path / "auth")
    ok("auth", "init", auth, "--prefix", "prod.hive")
    done = run("up", "--auth", auth, "--port", str(free_port()))
    assert done.returncode == 2
    assert "prefix 'prod.hive'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_credentials_file_is_one_line(tmp_path: Path):
    done = run("status", "--creds", str(tmp_path / "nope.creds"), "--nats", "nats://127.0.0.1:1")
    assert done.returncode == 2
    assert "nope.creds" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
