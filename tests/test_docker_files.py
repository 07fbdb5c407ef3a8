"""docker/ without Docker: every file valid, and every file used by the compose stack.

CI has no Docker engine, so these tests check what can be checked without one: the compose
file against the Compose specification's JSON schema (tests/data/compose-spec.json), that every
configuration file in docker/ is mounted by a service, that Grafana's provisioning agrees with
the compose mounts and the dashboard with the data source, Prometheus's configuration and rules
with ``promtool``, and the Dockerfile's install step with uv itself. The configurations at work
(a NATS cluster, core replicas, a real Prometheus) are in ``test_docker_stack.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return loaded


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DOCKER / "grafana/dashboards/hivebus.json").read_text())
    return loaded


def promtool() -> str:
    """``promtool`` from the distribution's prometheus package (.ci/run installs it)."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs the prometheus package")
        pytest.skip("promtool is missing: apt-get install prometheus (.ci/run does)")
    return found


def test_compose_follows_the_compose_specification():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(compose(), schema, cls=jsonschema.Draft7Validator)


def test_a_compose_file_breaking_the_specification_is_refused():
    """The schema check can fail: a misspelt key is caught."""
    broken = compose()
    broken["services"]["core"]["stop_grace"] = "20s"
    with pytest.raises(jsonschema.ValidationError, match="stop_grace"):
        jsonschema.validate(broken, json.loads(SCHEMA.read_text()), cls=jsonschema.Draft7Validator)


def _mounted_sources() -> dict[str, str]:
    """Host path (relative to docker/) -> container path, for every bind mount."""
    mounts = {}
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source, target, *_ = volume.split(":")
            if source.startswith("./"):
                mounts[source.removeprefix("./")] = target
    return mounts


def test_every_configuration_file_in_docker_is_mounted_by_a_service():
    mounts = _mounted_sources()
    for source in mounts:
        assert (DOCKER / source).exists(), f"compose mounts {source}, which does not exist"
    config_files = [
        path.relative_to(DOCKER).as_posix()
        for path in DOCKER.rglob("*")
        if path.is_file() and path.name not in {"README.md", "Dockerfile", "compose.yaml"}
    ]
    unmounted = [
        path
        for path in config_files
        if not any(path == source or path.startswith(source + "/") for source in mounts)
    ]
    assert unmounted == []
    assert len(config_files) >= 9


def test_nats_services_each_get_their_own_config_and_volume():
    services = compose()["services"]
    nats = {name: s for name, s in services.items() if name.startswith("nats-")}
    assert sorted(nats) == ["nats-1", "nats-2", "nats-3"]
    for name, service in nats.items():
        config = DOCKER / "nats" / f"{name}.conf"
        assert f"./nats/{name}.conf:/etc/nats/nats.conf:ro" in service["volumes"]
        assert f"{name}-data:/data" in service["volumes"]
        text = config.read_text()
        assert f"server_name: {name}" in text
        assert "store_dir: /data" in text
        routes = re.findall(r"nats-route://(nats-\d):6222", text)
        assert sorted(routes) == sorted(nats)
    assert set(compose()["volumes"]) >= {f"{name}-data" for name in nats}


def test_core_replicas_agent_and_metrics_stack_are_there():
    services = compose()["services"]
    assert services["core"]["deploy"]["replicas"] >= 2
    assert services["core"]["command"][0] == "up"
    assert "hivebus agent --id" in services["agent"]["command"][0]
    assert {"prometheus", "grafana"} <= set(services)
    urls = services["core"]["environment"]["HIVEBUS_NATS_URL"].split(",")
    assert urls == ["nats://nats-1:4222", "nats://nats-2:4222", "nats://nats-3:4222"]
    # the Prometheus job finds the replicas by the service's DNS name, on the plugin's port
    scrape = yaml.safe_load((DOCKER / "prometheus/prometheus.yml").read_text())
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "hivebus")
    (dns,) = job["dns_sd_configs"]
    assert dns["names"] == ["core"]
    assert f"port = {dns['port']}" in (DOCKER / "hivebus/hivebus.toml").read_text()


def test_grafana_provisioning_matches_the_mounts_and_the_dashboard():
    mounts = _mounted_sources()
    datasources = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    (source,) = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/hivebus.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["options"]["path"] == mounts["grafana/dashboards"]
    assert mounts["grafana/provisioning"] == "/etc/grafana/provisioning"
    board = dashboard()
    used = {
        json.dumps(target["datasource"], sort_keys=True)
        for panel in board["panels"]
        for target in panel.get("targets", [])
    }
    assert used == {json.dumps({"type": "prometheus", "uid": source["uid"]}, sort_keys=True)}
    home = compose()["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert home == f"{provider['options']['path']}/hivebus.json"


def test_the_dashboard_shows_the_bus_at_a_glance():
    titles = {panel["title"] for panel in dashboard()["panels"]}
    for wanted in [
        "Tasks per second",
        "Delegation latency",
        "Queue wait",
        "Queue depth by priority",
        "Agents by state",
        "Failures",
        "Per-replica health",
    ]:
        assert wanted in titles


def test_promtool_finds_the_prometheus_configuration_and_rules_valid():
    tool = promtool()
    config = subprocess.run(
        [tool, "check", "config", str(DOCKER / "prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout + config.stderr
    rules = subprocess.run(
        [tool, "check", "rules", str(DOCKER / "prometheus/alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 11 rules found" in rules.stdout + rules.stderr


def test_promtool_refuses_a_broken_rule(tmp_path: Path):
    """The check can fail: a rule with a PromQL syntax error is refused."""
    broken = (
        (DOCKER / "prometheus/alerts.yml")
        .read_text()
        .replace('expr: up{job="hivebus"} == 0', 'expr: up{job="hivebus" == 0')
    )
    (tmp_path / "alerts.yml").write_text(broken)
    done = subprocess.run(
        [promtool(), "check", "rules", str(tmp_path / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0


def test_the_alert_rules_fire_on_the_situations_they_name():
    """``promtool test rules`` with series written for each alert (docker/prometheus/tests)."""
    done = subprocess.run(
        [promtool(), "test", "rules", "alerts.test.yml"],
        cwd=DOCKER / "prometheus",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def _dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


def test_the_dockerfile_runs_as_a_user_with_a_health_check():
    text = _dockerfile()
    assert re.search(r"^USER hivebus$", text, re.M)
    assert "HEALTHCHECK" in text
    assert 'CMD ["hivebus", "status", "--json"]' in text
    assert "uv sync --locked" in text
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"


@pytest.mark.slow
def test_the_dockerfile_install_step_works_from_the_copied_files_alone(tmp_path: Path):
    """Replay the Dockerfile's COPY and ``uv sync`` lines in a directory holding only what it
    copies, into a fresh environment, and run the image's command from it."""
    text = _dockerfile()
    context = tmp_path / "src"
    context.mkdir()
    for sources, target in re.findall(r"^COPY (?!--from)(.+) (\S+)$", text, re.M):
        for source in sources.split():
            origin = ROOT / source
            if origin.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".*")
                shutil.copytree(origin, context / target, dirs_exist_ok=True, ignore=ignore)
            else:
                (context / target).mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, context / target / origin.name)
    environment = tmp_path / "opt-hivebus"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    env.update(UV_PROJECT_ENVIRONMENT=str(environment), UV_LINK_MODE="copy")
    syncs = re.findall(r"^\s*(uv sync [^\n]+)$", text, re.M)
    assert len(syncs) == 2
    for line in syncs:
        done = subprocess.run(
            line.split(), cwd=context, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
    hivebus = environment / "bin" / "hivebus"
    usage = subprocess.run([str(hivebus), "--help"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0, usage.stderr
    assert "bench" not in usage.stdout  # the benchmarks stay out of the image
    site = next(environment.glob("lib/python*/site-packages"))
    assert (site / "hivebus_performance").is_dir()
    assert not (site / "hivebus_bench").exists()
    assert not (site / "pytest").exists()
