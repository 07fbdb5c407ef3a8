"""``hivebus plugin new NAME``: a complete plugin distribution to start from.

It writes ``hivebus-NAME/`` with a ``pyproject.toml`` (the ``hivebus`` entry point), a module
whose plugin uses the plugin context (an endpoint, its own bucket, an event, an alert), a
README and tests on the ``hivebus.testing`` fixtures. Until hivebus is on a package index the
distribution depends on it from a path: the checkout this ``hivebus`` runs from, when it runs
from one, or ``--hivebus-source``.
"""

from __future__ import annotations

import argparse
import re
from importlib.resources import files
from pathlib import Path
from string import Template

__all__ = ["new_plugin", "run_plugin_command"]

NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


class TemplateError(ValueError):
    """The plugin cannot be written as asked (a bad name, a folder in the way)."""


def _checkout() -> Path | None:
    """The hivebus checkout this installation runs from (an editable install), if any."""
    root = Path(str(files("hivebus"))).resolve().parents[2]
    is_checkout = (root / "core" / "pyproject.toml").is_file()
    return root if is_checkout and (root / "hookspecs" / "pyproject.toml").is_file() else None


def _sources(source: Path | None) -> str:
    if source is None:
        return ""
    core, hookspecs = source / "core", source / "hookspecs"
    return (
        "\n# Until hivebus is on a package index: where its distributions are.\n"
        "[tool.uv.sources]\n"
        f'hivebus = {{ path = "{core}", editable = true }}\n'
        f'hivebus-hookspecs = {{ path = "{hookspecs}", editable = true }}\n'
    )


def new_plugin(name: str, directory: Path, hivebus_source: Path | None = None) -> Path:
    """Write the distribution ``hivebus-<name>`` under ``directory``; returns its folder."""
    if not NAME.match(name):
        raise TemplateError(
            f"plugin name {name!r}: lower-case letters and digits, words joined by '-'"
        )
    target = directory / f"hivebus-{name}"
    if target.exists():
        raise TemplateError(f"{target} exists already")
    module = "hivebus_" + name.replace("-", "_")
    values = {
        "name": name,
        "module": module,
        "cls": "".join(part.capitalize() for part in name.split("-")) + "Plugin",
        "sources": _sources(hivebus_source.resolve() if hivebus_source else _checkout()),
    }
    template = files("hivebus.cli") / "plugin_template"
    layout = {
        "pyproject.toml.tmpl": "pyproject.toml",
        "README.md.tmpl": "README.md",
        "plugin.py.tmpl": f"src/{module}/__init__.py",
        "test_plugin.py.tmpl": f"tests/test_{module}.py",
    }
    for source, destination in layout.items():
        text = Template((template / source).read_text()).substitute(values)
        path = target / destination
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (target / "src" / module / "py.typed").write_text("")
    return target


def run_plugin_command(args: argparse.Namespace) -> int:
    source = Path(args.hivebus_source) if args.hivebus_source else None
    try:
        target = new_plugin(args.name, Path(args.dir), source)
    except TemplateError as exc:
        print(f"hivebus: {exc}")
        return 2
    print(f"hivebus: wrote {target}: cd there, then `uv run --extra test pytest`")
    return 0
