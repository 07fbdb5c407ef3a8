"""The NATS connection options for production: user/password, token and TLS (with a client
certificate), against nats-servers that demand them. Core, agent and client all connect with
the same configuration; a wrong secret is a clear connection error, never a hang.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hivebus import Agent, Core, HivebusConfig, HiveClient, TaskStatus
from hivebus.connection import connect
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS


def config_for(server: EmbeddedServer, **options: Any) -> HivebusConfig:
    return HivebusConfig.load(**{**TEST_DEFAULTS, "nats_url": server.url, **options})


@pytest.fixture
def secured(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EmbeddedServer]:
    """A nats-server started with ``request.param`` as its security arguments."""
    server = EmbeddedServer(port=0, data_dir=tmp_path / "nats", extra_args=request.param)
    server.start()
    yield server
    server.stop()


async def a_round_trip(config: HivebusConfig) -> None:
    """A core, an agent and a client on the secured server: one task through all three."""
    core = Core(config)
    await core.start()
    agent = Agent("secure-agent", ["x"], lambda task: _echo(task), config=config)
    try:
        await agent.start()
        async with HiveClient(config=config) as hive:
            done = await hive.delegate("t", ["x"], payload="sealed", wait=True, wait_timeout=10)
        assert (done.status, done.result) == (TaskStatus.COMPLETED, "sealed")
    finally:
        await agent.stop(grace_s=1)
        await core.stop()


async def _echo(task: Any) -> Any:
    return task.payload


async def refused(config: HivebusConfig, name: str) -> None:
    """Connect once, without retrying: the server must turn the connection away."""
    client = await connect(config, name, reconnect=False)
    await client.close()


@pytest.mark.parametrize("secured", [("--user", "hive", "--pass", "s3cret")], indirect=True)
async def test_user_and_password(secured: EmbeddedServer):
    await a_round_trip(config_for(secured, user="hive", password="s3cret"))
    with pytest.raises(ConnectionError, match="cannot connect"):
        await connect(
            config_for(secured, user="hive", password="wrong"), "intruder", reconnect=False
        )
    with pytest.raises(ConnectionError):
        await refused(config_for(secured), "anonymous")


@pytest.mark.parametrize("secured", [("--auth", "t0ken")], indirect=True)
async def test_token(secured: EmbeddedServer):
    await a_round_trip(config_for(secured, token="t0ken"))
    with pytest.raises(ConnectionError, match="cannot connect"):
        await refused(config_for(secured, token="nope"), "intruder")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the openssl command")
    d = tmp_path_factory.mktemp("pki")
    (d / "san.cnf").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    key = ["-newkey", "rsa:2048", "-nodes", "-days", "1"]
    _openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem",
             "-subj", "/CN=hivebus test CA", cwd=d)  # fmt: skip
    for name in ("server", "client"):
        _openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=hivebus test {name}", cwd=d)  # fmt: skip
        sign = ["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-extfile", "san.cnf"]
        _openssl("x509", "-req", "-in", f"{name}.csr", *sign, "-days", "1",
                 "-out", f"{name}.pem", cwd=d)  # fmt: skip
    return d


@pytest.fixture
def tls_server(pki: Path, tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A nats-server that requires TLS and a client certificate signed by the test CA."""
    args = (
        "--tlsverify",
        "--tlscert", str(pki / "server.pem"),
        "--tlskey", str(pki / "server.key"),
        "--tlscacert", str(pki / "ca.pem"),
    )  # fmt: skip
    server = EmbeddedServer(port=0, data_dir=tmp_path / "nats", extra_args=args)
    server.start()
    yield server
    server.stop()


async def test_tls_with_a_client_certificate(tls_server: EmbeddedServer, pki: Path):
    config = config_for(
        tls_server,
        tls_ca_file=pki / "ca.pem",
        tls_cert_file=pki / "client.pem",
        tls_key_file=pki / "client.key",
    )
    await a_round_trip(config)
    with pytest.raises(ConnectionError):  # trusts the server, but shows no certificate
        await connect(
            config_for(tls_server, tls_ca_file=pki / "ca.pem"), "no-cert", reconnect=False
        )
    with pytest.raises(ConnectionError):  # no TLS at all
        await refused(config_for(tls_server), "plain")
