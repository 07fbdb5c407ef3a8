"""The context plugin's documentation keeps up with its code: every setting has a row in
docs/configuration.md, every endpoint it serves and every status field is in docs/context.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hivebus_context import ContextSettings, SessionSettings, UsageSettings
from hivebus_context.plugin import ContextPlugin
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
CONTEXT = (ROOT / "docs" / "context.md").read_text()
SECTION = CONFIGURATION.split("## The context plugin", 1)[1]

MODELS: list[tuple[str, type[BaseModel]]] = [
    ("[plugin_config.context]", ContextSettings),
    ("[plugin_config.context.sessions]", SessionSettings),
    ("[plugin_config.context.usage]", UsageSettings),
]


def table_after(heading: str) -> str:
    """The first table after ``heading`` in the plugin's configuration section."""
    rest = SECTION.split(f"`{heading}`", 1)[1]
    return rest.split("\n\n|", 1)[1].split("\n\n", 1)[0]


@pytest.mark.parametrize(
    ("heading", "field"),
    [
        (heading, name)
        for heading, model in MODELS
        for name, info in model.model_fields.items()
        if not (isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel))
    ],
)
def test_every_setting_has_a_row_with_its_default(heading: str, field: str):
    model = dict(MODELS)[heading]
    default = model.model_fields[field].default
    row = re.search(rf"^\|\s*`{field}`\s*\|\s*`([^`]*)`", table_after(heading), re.MULTILINE)
    assert row is not None, f"{heading} {field} has no row in docs/configuration.md"
    shown = str(default).lower() if isinstance(default, bool) else str(default)
    assert row.group(1) == shown, f"{field}: docs say {row.group(1)}, the code {default}"


@pytest.mark.parametrize("endpoint", ["get", "put", "append"])
def test_every_endpoint_is_documented(endpoint: str):
    assert f"| `plugin.context.{endpoint}` |" in CONTEXT


def test_every_status_field_is_documented():
    plugin = ContextPlugin()
    for field in plugin.hivebus_status():
        assert f"`{field}`" in CONTEXT.split("## Status", 1)[1], field
