"""The real Prometheus (Debian's package, as .ci/run installs it) scraping two core replicas that
share one JetStream bus, each serving the performance plugin's endpoint on its own port: every
metric an operator relies on is queryable, per replica, and no ``_created`` series is stored.
``promtool check metrics`` accepts the exposition as it is served.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from conftest import eventually
from hivebus import Agent, Core, HivebusConfig, HiveClient, Offer, RemoteError
from hivebus.connection import connect
from hivebus.server import EmbeddedServer, free_port
from hivebus.testing import TEST_DEFAULTS
from test_docker_stack import prometheus_binary, wait_until

pytestmark = pytest.mark.timeout(120)  # about 6 s: not marked slow

EVERY_METRIC = (
    "hivebus_delegation_seconds_bucket",
    "hivebus_queue_wait_seconds_bucket",
    "hivebus_task_duration_seconds_bucket",
    "hivebus_offers_declined_total",
    "hivebus_queue_depth_by_priority",
    "hivebus_agents_by_role",
    "hivebus_core_health",
    "hivebus_plugin_health",
    "hivebus_plugin_vetoes_total",
    "hivebus_plugin_hook_duration_seconds_count",
    "hivebus_plugin_hook_duration_seconds_sum",
    "hivebus_build_info",
    "hivebus_process_cpu_usage_ratio",
    "hivebus_process_memory_usage_ratio",
    "hivebus_data_dir_disk_used_ratio",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()  # type: ignore[no-any-return]


class Prometheus:
    def __init__(self, tmp: Path, targets: list[str]) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "hivebus", "static_configs": [{"targets": targets}]}],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = tmp / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    prometheus_binary(),
                    f"--config.file={tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        """Until its HTTP API answers (a refused connection is "not yet", as in the docker
        stack's test): a slow start on a busy machine is not a missing metric."""
        ready = f"http://127.0.0.1:{self.port}/-/ready"
        wait_until(lambda: _get(ready), timeout=60, what="prometheus ready")

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        body = json.loads(_get(url))
        assert body["status"] == "success", body
        return body["data"]["result"]  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def replica_config(server: EmbeddedServer, name: str, port: int) -> HivebusConfig:
    return HivebusConfig.load(
        **{
            **TEST_DEFAULTS,
            "nats_url": server.url,
            "state": "jetstream",
            "orchestrator_id": name,
            "plugins": ["performance", "security"],
            "plugin_config": {
                "performance": {"port": port, "refresh_s": 0.2, "interval_s": 0.2},
                "security": {"denied_capabilities": ["forbidden"]},
            },
        }
    )


@pytest.fixture
def prometheus_installed() -> None:
    prometheus_binary()  # skips (fails on CI) without the package


@pytest.fixture
async def replicas(
    nats_server: EmbeddedServer, prometheus_installed: None
) -> AsyncIterator[list[Core]]:
    ports = [free_port(), free_port()]
    cores = [Core(replica_config(nats_server, f"core-{n}", port)) for n, port in enumerate(ports)]
    for core in cores:
        await core.start()
    yield cores
    for core in cores:
        await core.stop()


async def echo(task: Offer) -> Any:
    return task.payload


async def test_prometheus_scrapes_two_replicas_and_every_metric_is_queryable(
    replicas: list[Core], nats_server: EmbeddedServer, tmp_path: Path
):
    config = replicas[0].config
    urls = []
    for core in replicas:
        status = (await core.orchestrator.status())["extensions"]["performance"]
        assert status["error"] is None
        urls.append(status["url"])
    targets = [url.removeprefix("http://").removesuffix("/metrics") for url in urls]
    assert len(set(targets)) == 2
    prometheus = Prometheus(tmp_path, targets)
    nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "test-grumpy")

    async def refuse(msg: Any) -> None:
        await msg.respond(orjson.dumps({"accept": False, "reason": "not today"}))

    try:
        await asyncio.to_thread(prometheus.wait_ready)
        await nc.subscribe("agent.grumpy.assign", cb=refuse)
        await nc.request(
            "agent.register", orjson.dumps({"agent_id": "grumpy", "capabilities": ["py"]}), 5
        )
        async with Agent("w1", ["py"], echo, config=config), HiveClient(config=config) as hive:
            for n in range(12):  # spread over both replicas by the queue group
                priority = ("low", "medium", "high", "critical")[n % 4]
                done = await hive.delegate(
                    "build", ["py"], payload=n, priority=priority, wait=True, wait_timeout=10
                )
                assert done.result == n
            with pytest.raises(RemoteError):
                await hive.delegate("build", ["forbidden"])  # vetoed by security
            await hive.delegate("build", ["gpu"], priority="high")  # waits: nobody has gpu

            def missing() -> list[str]:
                gone = [
                    name
                    for name in EVERY_METRIC
                    if not prometheus.query(f'count({name}{{job="hivebus"}})')
                ]
                # Both replicas are scraped and serve the families every core has.
                for name in (
                    "hivebus_build_info",
                    "hivebus_core_health",
                    "process_cpu_seconds_total",
                ):
                    if len(prometheus.query(f"count by (instance) ({name})")) != 2:
                        gone.append(f"{name} from both replicas")
                return gone

            async def all_present() -> bool:
                return not await asyncio.to_thread(missing)

            async def explain() -> str:
                return f"not in Prometheus: {await asyncio.to_thread(missing)}"

            await eventually(all_present, timeout=60, explain=explain)
            declined = prometheus.query('sum(hivebus_offers_declined_total{outcome="refused"})')
            assert float(declined[0]["value"][1]) >= 1
            vetoes = prometheus.query("sum by (plugin) (hivebus_plugin_vetoes_total)")
            assert [v["metric"]["plugin"] for v in vetoes] == ["security"]
            waiting = prometheus.query('max(hivebus_queue_depth_by_priority{priority="high"})')
            assert float(waiting[0]["value"][1]) == 1
            live = prometheus.query('max(sum by (instance) (hivebus_agents_by_role{state="live"}))')
            assert float(live[0]["value"][1]) >= 1
            types = prometheus.query("count by (task_type) (hivebus_task_duration_seconds_count)")
            assert [t["metric"]["task_type"] for t in types] == ["build"]
            assert prometheus.query('{__name__=~".+_created"}') == []

        promtool = shutil.which("promtool")
        if promtool is not None:
            text = await asyncio.to_thread(_get, urls[0])
            checked = await asyncio.to_thread(
                subprocess.run,
                [promtool, "check", "metrics"],
                input=text,
                capture_output=True,
                check=False,
            )
            assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    finally:
        await nc.close()
        prometheus.stop()
