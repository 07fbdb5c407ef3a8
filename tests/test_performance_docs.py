"""The performance plugin's docs stay true: every setting has its row in docs/configuration.md,
and every metric family a running core serves is named in docs/performance.md."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hivebus import HiveClient
from hivebus_performance import PerformanceSettings
from prometheus_client.parser import text_string_to_metric_families

DOCS = Path(__file__).resolve().parent.parent / "docs"


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n### ", start + len(heading))
    return text[start : end if end != -1 else None]


@pytest.mark.parametrize("field", list(PerformanceSettings.model_fields))
def test_every_setting_has_a_row_in_configuration_md(field: str):
    text = section((DOCS / "configuration.md").read_text(), "### The performance plugin")
    assert re.search(rf"^\| `{field}` \|", text, re.MULTILINE), field


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "hivebus_settings",
    [{"plugins": ["performance"], "plugin_config": {"performance": {"port": 0}}}],
)
async def test_every_metric_served_is_in_performance_md(hive: HiveClient, hivebus_core: Any):
    url = (await hive.status())["extensions"]["performance"]["url"]
    families = {
        family.name for family in text_string_to_metric_families(await asyncio.to_thread(_get, url))
    }
    assert "hivebus_build_info" in families
    documented = (DOCS / "performance.md").read_text()
    missing = [
        name
        for name in sorted(families)
        if not name.startswith(("process_", "python_"))
        and f"`{name}`" not in documented
        and f"`{name}_total`" not in documented
    ]
    assert missing == []
