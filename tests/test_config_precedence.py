"""Where settings come from: defaults < TOML file < environment (``HIVEBUS_*``) < flags; and the
plugin switches (``plugins``, ``plugin_autoload``, ``enable_plugins``/``-p NAME``,
``disable_plugins``/``-p no:NAME``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
import pytest
from hivebus import HivebusConfig
from hivebus.plugins import PluginHost
from processes import run, spawn
from pydantic import ValidationError

SHIPPED = ["audit", "automation", "context", "performance", "production", "security"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ``HIVEBUS_*`` from the machine running the tests."""
    import os

    for key in [k for k in os.environ if k.startswith("HIVEBUS_")]:
        monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture
def toml(tmp_path: Path) -> Path:
    path = tmp_path / "hivebus.toml"
    path.write_text(
        'offer_timeout_s = 2.0\nmax_agents = 20\nmax_attempts = 7\nmode = "development"\n'
        'prefix = "from.file"\n'
    )
    return path


def test_each_source_overrides_the_one_before(clean_env: pytest.MonkeyPatch, toml: Path):
    defaults = HivebusConfig.load()
    assert (defaults.offer_timeout_s, defaults.max_agents, defaults.max_attempts) == (1.0, 100, 5)

    from_file = HivebusConfig.load(toml)
    assert (from_file.offer_timeout_s, from_file.max_agents, from_file.max_attempts) == (2.0, 20, 7)
    assert from_file.heartbeat_interval_s == defaults.heartbeat_interval_s  # not in the file

    clean_env.setenv("HIVEBUS_OFFER_TIMEOUT_S", "3.0")
    clean_env.setenv("HIVEBUS_MAX_AGENTS", "30")
    with_env = HivebusConfig.load(toml)
    assert (with_env.offer_timeout_s, with_env.max_agents, with_env.max_attempts) == (3.0, 30, 7)

    flagged = HivebusConfig.load(toml, offer_timeout_s=4.0, max_agents=None)
    assert (flagged.offer_timeout_s, flagged.max_agents, flagged.max_attempts) == (4.0, 30, 7)
    assert (flagged.mode.value, flagged.prefix) == ("development", "from.file")


def test_environment_lists_and_booleans(clean_env: pytest.MonkeyPatch):
    clean_env.setenv("HIVEBUS_DISABLE_PLUGINS", " audit , ,security")
    clean_env.setenv("HIVEBUS_PLUGINS", "")
    clean_env.setenv("HIVEBUS_PLUGIN_AUTOLOAD", "no")
    clean_env.setenv("HIVEBUS_PLUGIN_CONFIG", '{"audit": {"max_files": 3}}')
    config = HivebusConfig.load()
    assert config.disable_plugins == ["audit", "security"]
    assert config.plugins == []
    assert config.plugin_autoload is False
    assert config.plugin_settings("audit") == {"max_files": 3}


def test_a_bad_value_or_unknown_key_names_the_field(clean_env: pytest.MonkeyPatch, tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("max_agnets = 3\n")
    with pytest.raises(ValidationError, match="max_agnets"):
        HivebusConfig.load(bad)
    clean_env.setenv("HIVEBUS_MAX_AGENTS", "0")
    with pytest.raises(ValidationError, match="max_agents"):
        HivebusConfig.load()
    with pytest.raises(FileNotFoundError):
        HivebusConfig.load(tmp_path / "missing.toml")


async def _loaded(**settings: object) -> list[str]:
    host = PluginHost(HivebusConfig.load(**settings))
    host.load_entry_points()
    return sorted(info.name for info in await host.describe())


@pytest.mark.parametrize(
    ("settings", "loaded"),
    [
        ({}, SHIPPED),
        (
            {"disable_plugins": ["performance", "security"]},
            ["audit", "automation", "context", "production"],
        ),
        ({"plugins": ["context", "security"]}, ["context", "security"]),
        ({"plugins": ["context"], "enable_plugins": ["automation"]}, ["automation", "context"]),
        ({"plugin_autoload": False}, []),
        ({"plugin_autoload": False, "enable_plugins": ["audit"]}, ["audit"]),
        (  # -p NAME wins over a disable of the same name
            {"disable_plugins": ["audit"], "enable_plugins": ["audit"]},
            SHIPPED,
        ),
        ({"plugin_autoload": False, "enable_plugins": ["not-installed"]}, []),
    ],
    ids=[
        "autoload-all",
        "disable",
        "only-listed",
        "listed-plus-enabled",
        "no-autoload",
        "no-autoload-plus-enabled",
        "enable-beats-disable",
        "enabled-but-missing",
    ],
)
async def test_plugin_switches_choose_what_loads(
    clean_env: pytest.MonkeyPatch, settings: dict[str, object], loaded: list[str]
):
    assert await _loaded(**settings) == loaded


@pytest.mark.timeout(90)
async def test_hivebus_up_takes_file_then_environment_then_flags(
    nats_server, nats_client, tmp_path: Path, toml: Path
):
    url = nats_server.url
    await asyncio.to_thread(
        toml.write_text,
        'orchestrator_id = "from-file"\nmode = "development"\nheartbeat_interval_s = 7.0\n'
        'state = "memory"\nplugin_autoload = false\nenable_plugins = ["context"]\n'
        'disable_plugins = ["security"]\n',
    )
    env = {"HIVEBUS_HEARTBEAT_INTERVAL_S": "3.0", "HIVEBUS_ENABLE_PLUGINS": "automation,security"}
    flags = ["--config", str(toml), "-p", "audit", "-p", "no:automation"]
    core = spawn("up", "--nats", url, *flags, cwd=tmp_path, **env)
    try:
        await core.until("serving on")
        status = json.loads(
            (await asyncio.to_thread(run, "status", "--nats", url, "--json")).stdout
        )
        assert (status["orchestrator_id"], status["mode"]) == ("from-file", "development")
        listed = await asyncio.to_thread(run, "plugins", "--nats", url, "--json")
        names = sorted(p["name"] for p in json.loads(listed.stdout))
        # enable_plugins: the environment's list replaces the file's (context is gone), and -p
        # adds audit. disable_plugins: the file's security plus -p no:automation; but an
        # enabled name wins over a disabled one, so both still load.
        assert names == ["audit", "automation", "security"]
        # heartbeat_interval_s: the environment's 3.0 beats the file's 7.0.
        body = orjson.dumps({"agent_id": "probe"})
        reply = orjson.loads((await nats_client.request("agent.register", body, timeout=5)).data)
        assert reply["heartbeat_interval_s"] == 3.0
    except Exception:
        print("\n".join(core.lines))
        raise
    finally:
        core.stop()
