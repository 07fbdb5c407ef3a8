"""The documentation keeps up with the code: every name below is derived from the code itself.

In the spirit of datasette's ``test_plugin_hooks_are_documented``: add a hook, an error code,
an event, a subject, a wire field or a configuration field, and a test here fails until the
docs describe it.
"""

from __future__ import annotations

import inspect
import itertools
import re
from pathlib import Path

import pluggy
import pytest
from hivebus.config import HivebusConfig
from hivebus.errors import status_code
from hivebus.subjects import Subjects
from hivebus_hookspecs import PluginContext, hookspecs, models
from hivebus_hookspecs.models import ErrorCode, EventName
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS_MD = ROOT / "subjects.md"
README_MD = ROOT / "README.md"
HOOKS_MD = ROOT / "docs" / "hooks.md"
CONFIGURATION_MD = ROOT / "docs" / "configuration.md"
OPERATIONS_MD = ROOT / "docs" / "operations.md"

# What to substitute for each parameter of a subject-building method of ``Subjects``.
PLACEHOLDERS: dict[str, list[str]] = {
    "agent_id": ["<agent_id>"],
    "task_id": ["<task_id>"],
    "name": [name.value for name in EventName],
    "severity": ["<severity>"],
    "plugin": ["<plugin>"],
    "endpoint": ["<endpoint>"],
    "event_name": ["<name>"],
    "direction": ["<direction>"],
}


def _hooks() -> list[str]:
    return sorted(
        name
        for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("hivebus_")
    )


def _subjects() -> list[str]:
    """Every subject ``Subjects`` can produce (no prefix), with placeholders for parameters."""
    subjects = Subjects()
    found: list[str] = []
    for name in dir(Subjects):
        if name.startswith("_") or name == "prefix":
            continue
        attribute = inspect.getattr_static(Subjects, name)
        if isinstance(attribute, property):
            found.append(getattr(subjects, name))
            continue
        method = getattr(subjects, name)
        params = list(inspect.signature(method).parameters)
        unknown = [p for p in params if p not in PLACEHOLDERS]
        if unknown:
            pytest.fail(f"Subjects.{name} takes {unknown}: add placeholders to test_docs.py")
        found += [method(*values) for values in itertools.product(*map(PLACEHOLDERS.get, params))]
    return sorted(set(found))


def _wire_fields() -> list[tuple[str, str]]:
    """(model, field) for every pydantic model of the wire contract."""
    pairs = []
    for name in models.__all__:
        model = getattr(models, name)
        if inspect.isclass(model) and issubclass(model, BaseModel):
            pairs += [(name, field) for field in model.model_fields]
    return sorted(pairs)


def _config_section(first: str, until: str) -> list[str]:
    """The fields ``HivebusConfig`` declares from its ``# --- first ---`` section to ``until``'s."""
    source = inspect.getsource(HivebusConfig)
    start, end = source.find(f"# --- {first} ---"), source.find(f"# --- {until} ---")
    if not 0 <= start < end:
        pytest.fail(f"config.py lost its '# --- {first} ---' or '# --- {until} ---' comment")
    names = re.findall(r"^    ([a-z_][a-z0-9_]*)\s*:", source[start:end], re.MULTILINE)
    unknown = sorted(set(names) - set(HivebusConfig.model_fields))
    if unknown:
        pytest.fail(f"test_docs.py read {unknown} as HivebusConfig fields: fix _config_section")
    return names


def _headings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


def _table_row(text: str, key: str) -> str | None:
    """The first Markdown table row whose first cell is ``key`` in backticks."""
    match = re.search(rf"^\|\s*`{re.escape(key)}`\s*\|.*$", text, re.MULTILINE)
    return match.group(0) if match else None


HOOKS = _hooks()
SUBJECTS = _subjects()
WIRE_FIELDS = _wire_fields()
CONFIG_FIELDS = sorted(HivebusConfig.model_fields)
# State, scheduling and limits, health thresholds: what docs/operations.md explains.
OPERATIONS_FIELDS = _config_section("state", until="plugins")


def test_the_derived_lists_are_not_empty():
    # Guards against a vacuous pass if the introspection above stops finding things.
    assert len(HOOKS) >= 10
    assert "agent.<agent_id>.assign" in SUBJECTS
    assert "events.>" in SUBJECTS
    assert len(ErrorCode) >= 10
    assert len(EventName) >= 5
    assert ("DelegateRequest", "task_id") in WIRE_FIELDS
    assert "nats_url" in CONFIG_FIELDS
    assert {"state", "kv_replicas", "heartbeat_interval_s", "max_attempts"} <= set(
        OPERATIONS_FIELDS
    )
    assert "nats_url" not in OPERATIONS_FIELDS


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_heading_in_the_hook_reference(hook: str):
    headings = _headings(HOOKS_MD.read_text())
    assert any(re.search(rf"\b{hook}\b", heading) for heading in headings), (
        f"{hook} has no heading in docs/hooks.md"
    )


def _documented_signature(hook: str) -> str:
    """The hook's spec as the reference writes it: decorator, parameters and annotations."""
    function = getattr(hookspecs, hook)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    spec = getattr(pm.hook, hook).spec
    decorator = "@hookspec(firstresult=True)" if spec and spec.opts["firstresult"] else "@hookspec"
    # Annotations are strings here (``from __future__ import annotations``): as written.
    signature = inspect.signature(function)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    return f"{decorator}\ndef {hook}({params}) -> {signature.return_annotation}: ..."


def _one_line(code: str) -> str:
    """A block as ruff formats it, joined back: long signatures wrap inside parentheses."""
    return re.sub(r"\s*\n\s*", " ", code).replace("( ", "(").replace(" )", ")")


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_signature_in_the_hook_reference_matches_the_spec(hook: str):
    expected = _documented_signature(hook)
    blocks = re.findall(r"```python\n(.*?)\n```", HOOKS_MD.read_text(), flags=re.S)
    assert _one_line(expected) in {_one_line(block) for block in blocks}, (
        f"docs/hooks.md does not show {hook} as specified; expected the block:\n{expected}"
    )


@pytest.mark.parametrize("subject", SUBJECTS)
def test_every_subject_is_in_subjects_md(subject: str):
    assert f"`{subject}`" in SUBJECTS_MD.read_text(), f"{subject} is missing from subjects.md"


@pytest.mark.parametrize("code", list(ErrorCode), ids=str)
def test_every_error_code_has_a_row_with_its_status_in_subjects_md(code: ErrorCode):
    row = _table_row(SUBJECTS_MD.read_text(), code.value)
    assert row is not None, f"error code {code.value} has no table row in subjects.md"
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == str(status_code(code)), (
        f"subjects.md says {code.value} is {cells[1]}; errors.py says {status_code(code)}"
    )


@pytest.mark.parametrize("event", list(EventName), ids=str)
def test_every_event_is_in_subjects_md(event: EventName):
    text = SUBJECTS_MD.read_text()
    assert _table_row(text, f"events.{event.value}") is not None, (
        f"events.{event.value} has no row in the events table of subjects.md"
    )
    assert re.search(rf"\b{re.escape(event.value)}\b", text)


# Where subjects.md documents each model of the wire contract: the heading of its section.
MODEL_SECTIONS = {
    "AgentView": "### Agent view",
    "Attempt": "### Task view",
    "ConcurrencyLimit": "### task.delegate",
    "RetryPolicy": "### Retries and dead letters",
    "AgentsReply": "### orchestrator.agents",
    "AgentsRequest": "### orchestrator.agents",
    "AuditReply": "### orchestrator.audit",
    "AuditRequest": "### orchestrator.audit",
    "SecurityEvent": "### Security events",
    "CompleteRequest": "### task.complete",
    "Alert": "### Plugins' events and alerts",
    "PluginEvent": "### Plugins' events and alerts",
    "ScaleDirection": "### Plugins' events and alerts",
    "ScaleSignal": "### Plugins' events and alerts",
    "ControlMessage": "### `agent.<agent_id>.control`",
    "DelegateReply": "### task.delegate",
    "DelegateRequest": "### task.delegate",
    "DeregisterReply": "### agent.deregister",
    "DeregisterRequest": "### agent.deregister",
    "EmptyRequest": "## Conventions",
    "ErrorBody": "## Conventions",
    "ErrorReply": "## Conventions",
    "Event": "## Events",
    "HeartbeatRequest": "### agent.heartbeat",
    "Offer": "### `agent.<agent_id>.assign`",
    "OfferReply": "### `agent.<agent_id>.assign`",
    "OkReply": "## Conventions",
    "PluginInfo": "### orchestrator.plugins",
    "PluginsReply": "### orchestrator.plugins",
    "ProgressRequest": "### task.progress",
    "RegisterReply": "### agent.register",
    "RegisterRequest": "### agent.register",
    "TaskReply": "### task.get",
    "TaskRequest": "### task.get",
    "TaskView": "### Task view",
    "TasksReply": "### orchestrator.tasks",
    "TasksRequest": "### orchestrator.tasks",
}

# A reply's one wrapping field is described in its section's prose, not in a field table.
WRAPPERS = {
    ("AgentsReply", "agents"),
    ("AuditReply", "records"),
    ("ErrorReply", "error"),
    ("PluginsReply", "plugins"),
    ("TaskReply", "task"),
    ("TasksReply", "tasks"),
}


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    lines = text.splitlines()
    if heading not in lines:
        pytest.fail(f"subjects.md has no heading {heading!r}")
    level = heading.split()[0]
    body: list[str] = []
    for line in lines[lines.index(heading) + 1 :]:
        marker = line.split(" ", 1)[0]
        if line.startswith("#") and set(marker) == {"#"} and len(marker) <= len(level):
            break
        body.append(line)
    return "\n".join(body)


def test_every_wire_model_has_a_section_in_subjects_md():
    models_found = sorted({model for model, _ in WIRE_FIELDS} | set(MODEL_SECTIONS))
    unmapped = [m for m in models_found if m not in MODEL_SECTIONS]
    assert unmapped == [], f"teach test_docs.py where subjects.md documents {unmapped}"


@pytest.mark.parametrize(("model", "field"), WIRE_FIELDS)
def test_every_wire_field_is_in_its_own_section_of_subjects_md(model: str, field: str):
    text = SUBJECTS_MD.read_text()
    if field == "ok":  # the envelope of every reply, described once
        section = _section(text, "## Conventions")
        assert '{"ok": true' in section, "subjects.md's conventions lost the reply envelope"
        return
    heading = MODEL_SECTIONS[model]
    section = _section(text, heading)
    if (model, field) in WRAPPERS:
        assert f"`{field}`" in section, f"{model}.{field} is not described under {heading}"
        return
    assert _table_row(section, field) is not None, (
        f"{model}.{field} has no row in the table under {heading} in subjects.md"
    )


@pytest.mark.parametrize("field", CONFIG_FIELDS)
def test_every_config_field_has_a_row_in_configuration_md(field: str):
    assert _table_row(CONFIGURATION_MD.read_text(), field) is not None, (
        f"HivebusConfig.{field} has no table row in docs/configuration.md"
    )


@pytest.mark.parametrize("field", OPERATIONS_FIELDS)
def test_every_state_and_scheduling_field_is_in_operations_md(field: str):
    assert f"`{field}`" in OPERATIONS_MD.read_text(), (
        f"HivebusConfig.{field} is a state, scheduling or health setting "
        "but docs/operations.md does not mention it"
    )


def test_the_readme_tree_has_one_line_per_folder_of_the_core_package():
    package = ROOT / "core" / "src" / "hivebus"
    folders = sorted(
        str(path.relative_to(package)) + "/"
        for path in package.rglob("*")
        if path.is_dir() and (path / "__init__.py").is_file()
    )
    tree = README_MD.read_text().split("core/src/hivebus/\n", 1)[1].split("```", 1)[0]
    listed = [line.split()[0] for line in tree.splitlines() if line.strip()]
    assert sorted(listed) == folders, "README's tree of core/src/hivebus differs from the folders"


def _context_table_members() -> set[str]:
    """The names the first column of docs/hooks.md's plugin context table documents."""
    section = HOOKS_MD.read_text().split("## The plugin context", 1)[1]
    table = section.split("\n|", 1)[1].split("\n\n", 1)[0]
    names: set[str] = set()
    for row in table.splitlines():
        first_cell = row.strip("|").split("|", 1)[0]
        for span in re.findall(r"`([^`]+)`", first_cell):
            names.add(re.match(r"(?:await )?(\w+)", span).group(1))  # type: ignore[union-attr]
    return names


@pytest.mark.parametrize("member", sorted(m for m in vars(PluginContext) if not m.startswith("_")))
def test_every_plugin_context_member_has_a_row_in_the_hook_reference(member: str):
    assert member in _context_table_members(), f"PluginContext.{member}: no row in docs/hooks.md"
