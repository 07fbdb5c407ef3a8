"""docker/'s configurations at work, without Docker: the stack as processes on this machine.

The three nats-servers run docker/nats/nats-N.conf; only what differs between containers and one
machine is overridden by flags (addresses, free ports, routes to them, a data directory). Two
core replicas run ``hivebus up --config docker/hivebus/hivebus.toml`` (each given its own metrics
port by the environment, as two containers have their own addresses), the agent runs the
compose file's command, and a real Prometheus runs docker/prometheus/prometheus.yml with its
DNS discovery replaced by the replicas' addresses and the rules file as it is. Every expression
of the dashboard and of the alert rules is then asked of that Prometheus.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hivebus import HivebusConfig
from hivebus.server import EmbeddedServer, free_port, start_servers
from hivebus.testing import until_jetstream_ready
from processes import Proc, run, spawn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is missing: .ci/run installs the prometheus package")
        pytest.skip("prometheus is missing: apt-get install prometheus (.ci/run does)")
    return found


def _get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_until(check: Callable[[], object], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    pytest.fail(f"{what or 'condition'} not met within {timeout}s (last: {last!r})")


def nats_cluster(data: Path) -> list[EmbeddedServer]:
    """docker/nats/nats-{1,2,3}.conf, on free ports of this machine."""
    client = [free_port() for _ in range(3)]
    route = [free_port() for _ in range(3)]
    monitor = [free_port() for _ in range(3)]
    routes = ",".join(f"nats-route://127.0.0.1:{port}" for port in route)
    servers = []
    for i in range(3):
        # The store directory is the one line rewritten: nats-server refuses -sd beside it.
        text = (DOCKER / "nats" / f"nats-{i + 1}.conf").read_text()
        assert text.count("store_dir: /data\n") == 1
        folder = data / f"nats-{i + 1}"
        folder.mkdir(parents=True)
        config = folder / "nats.conf"
        config.write_text(text.replace("store_dir: /data\n", f'store_dir: "{folder / "js"}"\n'))
        args = (
            "-c", str(config),
            "-m", str(monitor[i]),
            "--cluster", f"nats://127.0.0.1:{route[i]}",
            "--routes", routes,
        )  # fmt: skip
        # jetstream=False: no -js/-sd flags, JetStream comes from the file's own block
        server = EmbeddedServer(port=client[i], data_dir=folder, jetstream=False, extra_args=args)
        server.monitor_port = monitor[i]  # type: ignore[attr-defined]
        servers.append(server)
    return start_servers(servers)


class Stack:
    """NATS cluster, two core replicas, the example agent and Prometheus, as processes."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.servers: list[EmbeddedServer] = []
        self.cores: list[Proc] = []
        self.agent: Proc | None = None
        self.prometheus: subprocess.Popen[bytes] | None = None
        self.metrics_ports = [free_port(), free_port()]
        self.prometheus_port = free_port()

    @property
    def url(self) -> str:
        return ",".join(server.url for server in self.servers)

    def start(self) -> Stack:
        self.servers = nats_cluster(self.tmp / "nats")
        asyncio.run(until_jetstream_ready(HivebusConfig.load(nats_url=self.url)))
        for i, port in enumerate(self.metrics_ports):
            core = spawn(
                "up",
                "--config",
                str(DOCKER / "hivebus" / "hivebus.toml"),
                cwd=self.tmp,
                HIVEBUS_NATS_URL=self.url,
                HIVEBUS_ORCHESTRATOR_ID=f"core-{i + 1}",
                HIVEBUS_HEARTBEAT_INTERVAL_S="1",
                HIVEBUS_PLUGIN_CONFIG__PERFORMANCE__HOST="127.0.0.1",
                HIVEBUS_PLUGIN_CONFIG__PERFORMANCE__PORT=str(port),
                HIVEBUS_PLUGIN_CONFIG__PERFORMANCE__REFRESH_S="0.5",
            )
            self.cores.append(core)
            core.wait_for("serving on", timeout=60)
        self.agent = spawn(*self.agent_argv(), HIVEBUS_NATS_URL=self.url)
        self.agent.wait_for("ready", timeout=30)
        self.start_prometheus()
        return self

    @staticmethod
    def agent_argv() -> list[str]:
        """The compose file's agent command, with the container's hostname filled in."""
        service = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]["agent"]
        assert service["entrypoint"] == ["/bin/sh", "-c"]
        line = service["command"][0].replace("$$(hostname)", "test")  # compose's $$ is $
        argv = shlex.split(line)
        assert argv[:2] == ["exec", "hivebus"]
        return argv[2:]

    def start_prometheus(self) -> None:
        binary = prometheus_binary()
        config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["rule_files"] = [
            str(DOCKER / "prometheus" / rules) for rules in config["rule_files"]
        ]
        for job in config["scrape_configs"]:
            if job["job_name"] == "hivebus":
                del job["dns_sd_configs"]  # compose's DNS names, here the replicas' addresses
                targets = [f"127.0.0.1:{port}" for port in self.metrics_ports]
                job["static_configs"] = [{"targets": targets}]
            elif job["job_name"] == "prometheus":
                job["static_configs"] = [{"targets": [f"127.0.0.1:{self.prometheus_port}"]}]
        path = self.tmp / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        log = (self.tmp / "prometheus.log").open("wb")
        self.prometheus = subprocess.Popen(
            [
                binary,
                f"--config.file={path}",
                f"--storage.tsdb.path={self.tmp / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(lambda: self._ready(), timeout=60, what="prometheus ready")

    def _ready(self) -> bool:
        assert self.prometheus is not None
        if self.prometheus.poll() is not None:
            tail = (self.tmp / "prometheus.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"prometheus exited with {self.prometheus.returncode}:\n{tail}")
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.prometheus_port}/-/ready", timeout=2
        ) as response:
            return response.status == 200

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        body = _get_json(url)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def api(self, path: str) -> Any:
        body = _get_json(f"http://127.0.0.1:{self.prometheus_port}/api/v1/{path}")
        assert body["status"] == "success", body
        return body["data"]

    def hivebus(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(*args, HIVEBUS_NATS_URL=self.url)

    def stop(self) -> list[int]:
        """Stop everything; the exit codes of the agent and the cores (SIGTERM: 0 each)."""
        if self.prometheus is not None:
            self.prometheus.terminate()
            try:
                self.prometheus.wait(10)
            except subprocess.TimeoutExpired:
                self.prometheus.kill()
                self.prometheus.wait()
        codes = [self.agent.stop()] if self.agent is not None else []
        codes += [core.stop(timeout=20) for core in self.cores]
        for server in self.servers:
            server.stop()
        return codes


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_binary()
    stack = Stack(tmp_path_factory.mktemp("stack"))
    try:
        yield stack.start()
    except BaseException:
        stack.stop()
        raise
    # SIGTERM, as `docker compose stop` sends: the agent and both replicas stop cleanly.
    assert stack.stop() == [0, 0, 0]


def test_the_nats_configs_form_one_jetstream_cluster(stack: Stack):
    names = set()
    for server in stack.servers:
        varz = _get_json(f"http://127.0.0.1:{server.monitor_port}/varz")  # type: ignore[attr-defined]
        names.add(varz["server_name"])
        assert varz["cluster"]["name"] == "hivebus"
        assert varz["jetstream"]["config"]["max_memory"] == 256 * 1024 * 1024
        assert varz["max_payload"] == 1024 * 1024
        jsz = _get_json(f"http://127.0.0.1:{server.monitor_port}/jsz")  # type: ignore[attr-defined]
        assert jsz["meta_cluster"]["cluster_size"] == 3
    assert names == {"nats-1", "nats-2", "nats-3"}


def test_the_replicas_share_r3_state_and_the_example_agent_works(stack: Stack):
    done = stack.hivebus("delegate", "--cap", "text", "--payload", '"hello hive"', "--wait")
    assert done.returncode == 0, done.stderr
    assert "HELLO HIVE" in done.stdout
    assert "by shout-test" in done.stdout
    status = json.loads(stack.hivebus("status", "--json").stdout)
    assert status["health_status"] == "healthy", status["health_issues"]
    assert status["state"]["kind"] == "jetstream"
    buckets = status["state"]["buckets"]
    assert set(buckets) == {"hivebus_agents", "hivebus_tasks", "hivebus_seats"}
    for bucket in buckets.values():
        assert bucket["replicas"] == 3
        assert bucket["leader"] is True
    served = [line for core in stack.cores for line in core.lines if "serving on" in line]
    assert [("core-1" in line, "core-2" in line) for line in served] == [
        (True, False),
        (False, True),
    ]


def _expressions() -> dict[str, str]:
    """Every PromQL expression of the dashboard and of the alert rules, by where it is."""
    found: dict[str, str] = {}
    board = json.loads((DOCKER / "grafana" / "dashboards" / "hivebus.json").read_text())
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            found[f"dashboard {panel['title']!r} {target['refId']}"] = target["expr"]
    rules = yaml.safe_load((DOCKER / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            found[f"alert {rule['alert']}"] = rule["expr"].strip()
    return found


def _metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    names = set(re.findall(r"\b(hivebus_[a-z_]+)\b", without_strings))
    if re.search(r"\bup\{", without_strings):
        names.add("up")
    return names


def test_every_dashboard_and_alert_expression_answers_with_metrics_that_exist(stack: Stack):
    # Something to show: a finished task and one waiting for a capability nobody offers.
    assert stack.hivebus("delegate", "--cap", "text", "--payload", "1", "--wait").returncode == 0
    assert stack.hivebus("delegate", "--cap", "gpu", "--id", "waits-for-gpu").returncode == 0
    wait_until(
        lambda: (
            len(stack.query("hivebus_core_health == 1")) == 2
            and stack.query('max(hivebus_queue_depth_by_capability{capability="gpu"})')
            # by priority: only the replica that assigned the finished task has a series
            and stack.query("hivebus_queue_wait_seconds_count")
        ),
        what="both replicas scraped with the health gauges, the assignment and the waiting task",
    )
    time.sleep(3)  # a few more scrapes, so that rate() over them has two points at least
    names = set(stack.api("label/__name__/values"))
    expressions = _expressions()
    assert len(expressions) >= 30
    used: set[str] = set()
    for where, expr in expressions.items():
        stack.query(expr)  # answers (a syntax error or a bad function fails here)
        missing = _metric_names(expr) - names
        assert not missing, f"{where} uses metrics nobody exports: {sorted(missing)}"
        used |= _metric_names(expr)
    assert len(used) >= 15

    # and the answers are the ones the situation calls for
    by = {where: stack.query(expr) for where, expr in expressions.items()}
    assert float(by["dashboard 'Core replicas up' A"][0]["value"][1]) == 2
    assert {s["metric"]["priority"] for s in by["dashboard 'Queue depth by priority' A"]} == {
        "low",
        "medium",
        "high",
        "critical",
    }
    agents = {
        s["metric"]["state"]: float(s["value"][1]) for s in by["dashboard 'Agents by state' A"]
    }
    assert agents["idle"] == 1
    assert [s["metric"]["capability"] for s in by["alert HivebusNoAgentForQueuedCapability"]] == [
        "gpu"
    ]
    assert by["alert HivebusCoreDown"] == []
    assert by["alert HivebusNoCore"] == []
    assert by["alert HivebusCoreUnhealthy"] == []
    assert by["alert HivebusStateBucketNoQuorum"] == []
    assert len(by["dashboard 'State buckets: current replicas' A"]) == 3
    assert stack.hivebus("cancel", "waits-for-gpu").returncode == 0


def test_prometheus_evaluates_every_rule_without_error(stack: Stack):
    def evaluated() -> list[dict[str, Any]]:
        rules = [r for g in stack.api("rules")["groups"] for r in g["rules"]]
        return rules if all(r.get("lastEvaluation", "").startswith("2") for r in rules) else []

    rules = wait_until(evaluated, what="every rule evaluated once")
    assert len(rules) == 11
    assert {rule["name"]: rule["health"] for rule in rules} == {
        rule["name"]: "ok" for rule in rules
    }


def test_a_bucket_without_quorum_raises_its_alert_expression(tmp_path: Path):
    """Two of the three NATS servers go: the state buckets lose their quorum, the replicas say
    so, and the alert's expression finds it through Prometheus."""
    stack = Stack(tmp_path).start()
    try:
        expr = _expressions()["alert HivebusStateBucketNoQuorum"]
        wait_until(
            lambda: len(stack.query("hivebus_state_bucket_leader == 1")) == 6,
            what="both replicas reporting the three buckets led",
        )
        assert stack.query(expr) == []
        stack.servers[1].stop()
        stack.servers[2].stop()
        lost = wait_until(lambda: stack.query(expr), timeout=90, what="the quorum alert")
        assert {s["metric"]["bucket"] for s in lost} <= {
            "hivebus_agents",
            "hivebus_tasks",
            "hivebus_seats",
        }
        unhealthy = wait_until(
            lambda: stack.query(_expressions()["alert HivebusCoreUnhealthy"]),
            timeout=60,
            what="a replica reporting unhealthy",
        )
        assert unhealthy
    finally:
        stack.stop()
