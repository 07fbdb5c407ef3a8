"""Running hivebus commands as real processes, the way a user does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HIVEBUS = [sys.executable, "-m", "hivebus.cli"]


def hivebus_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVEBUS_")}
    env.update(extra)
    return env


class Proc:
    """A child process whose combined output is collected line by line by a thread."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self.popen = popen
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, needle: str, timeout: float = 20) -> str:
        """Block until an output line contains ``needle``; return that line."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if needle in line:
                return line
        output = "\n".join(self.lines)
        raise AssertionError(f"{needle!r} not seen in the output:\n{output}")

    async def until(self, needle: str, timeout: float = 20) -> str:
        """``wait_for`` without blocking the event loop (the core may be in this process)."""
        return await asyncio.to_thread(self.wait_for, needle, timeout)

    def signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def kill_group(self) -> None:
        """SIGKILL the process and everything it started, as a crashed container would die.

        Only for processes spawned with ``new_session=True`` (the group is theirs alone).
        """
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 10) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def spawn(*args: str, cwd: Path | None = None, new_session: bool = False, **env: str) -> Proc:
    """Start ``hivebus ARGS``; ``new_session``: in a process group of its own (``kill_group``)."""
    popen = subprocess.Popen(
        [*HIVEBUS, *args],
        cwd=cwd,
        env=hivebus_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_session,
    )
    return Proc(popen)


def run(*args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HIVEBUS, *args], env=hivebus_env(**env), capture_output=True, text=True, timeout=timeout
    )
