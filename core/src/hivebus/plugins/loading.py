"""Loading plugins, and refusing the ones a core cannot run.

Loading never crashes the core: a plugin that fails to import, implements a hook that does not
exist (a misspelling, found by pluggy's ``check_pending``), uses a wrapper implementation
(which an isolated call cannot honour) or lacks a plugin it requires is not loaded; it is
recorded as refused with the reason, and the error is logged naming it.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import pluggy
from hivebus_hookspecs import PROJECT

from . import checks
from .records import PluginRecords

if TYPE_CHECKING:
    from ..config import HivebusConfig

__all__ = ["ENTRY_POINT_GROUP", "PluginLoader"]

ENTRY_POINT_GROUP = PROJECT

log = logging.getLogger("hivebus.plugins")


class PluginLoader:
    """Registers plugins on ``pm`` and keeps a record of each, loaded or refused."""

    def __init__(
        self, config: HivebusConfig, pm: pluggy.PluginManager, records: PluginRecords
    ) -> None:
        self.config = config
        self.pm = pm
        self.records = records
        self.started = False
        """Once the host started, a plugin registered late is checked for its requirements
        at once (before, ``check_requirements`` checks them all together)."""

    def load_entry_points(self) -> None:
        """Register the installed plugins the configuration allows, each once."""
        config = self.config
        enabled = set(config.enable_plugins)
        disabled = set(config.disable_plugins) - enabled
        allowed: set[str] | None = None
        if config.plugins is not None:
            allowed = set(config.plugins) | enabled
        elif not config.plugin_autoload:
            allowed = enabled
        found: set[str] = set()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            found.add(ep.name)
            if ep.name in disabled or (allowed is not None and ep.name not in allowed):
                log.debug("plugin skipped by configuration", extra={"plugin": ep.name})
                continue
            if ep.name in self.records:
                continue
            version = ep.dist.version if ep.dist is not None else None
            try:
                plugin = checks.instance(ep.load())
            except Exception as exc:
                log.exception("plugin failed to load", extra={"plugin": ep.name})
                self.records.refuse(ep.name, version, repr(exc))
                continue
            self.register(plugin, ep.name, version)
        for name in sorted(enabled - found):
            log.warning("enabled plugin is not installed", extra={"plugin": name})

    def register(self, plugin: object, name: str, version: str | None = None) -> bool:
        """Register a plugin: a module, an instance, or a class (instantiated here, so each
        host has its own). ``False`` when refused: it is then listed as ``unhealthy``."""
        try:
            plugin = checks.instance(plugin)
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            self.records.refuse(name, version, str(exc))
            return False
        except Exception as exc:
            if self.pm.get_plugin(name) is not None:
                raise  # the name is taken: the caller's bug, not the plugin's
            self.records.refuse(name, version, repr(exc))
            return False
        self.records.loaded(name, version)
        problem = checks.wrapper_problem(self.pm, plugin) or self._pending_problem(plugin)
        if problem is None and self.started:
            problem = self._missing_problem(name)
        if problem is not None:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self.records.refuse(name, version, problem)
            return False
        checks.warn_unmarked(self.pm, plugin, name)
        log.info("plugin loaded", extra={"plugin": name, "version": version})
        return True

    def unregister(self, name: str) -> None:
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.records.forget(name)

    def check_requirements(self) -> None:
        """Refuse every plugin whose required plugins are missing, until none is."""
        refused = True
        while refused:
            refused = False
            for record in self.records:
                if self.pm.get_plugin(record.name) is None:
                    continue
                problem = self._missing_problem(record.name)
                if problem is not None:
                    self.pm.unregister(name=record.name)
                    self.records.refuse(record.name, record.version, problem)
                    refused = True

    def _pending_problem(self, plugin: object) -> str | None:
        """pluggy's ``check_pending``: a ``hivebus_*`` implementation that names no hook."""
        problem = None
        for culprit, name, found in checks.pending_problems(self.pm):  # unregistered already
            if culprit is plugin:
                problem = found
            else:  # registered on ``pm`` behind the host's back: refused all the same
                self.records.refuse(name, None, found)
        return problem

    def _missing_problem(self, name: str) -> str | None:
        wanted = checks.requires(self.pm.get_plugin(name))
        missing = [r for r in wanted if self.pm.get_plugin(r) is None]
        if not missing:
            return None
        reasons = []
        for required in missing:
            record = self.records.get(required)
            why = "is not installed or not enabled"
            if record is not None and record.load_error is not None:
                why = f"was not loaded ({record.load_error})"
            reasons.append(f"plugin {name!r} requires plugin {required!r}, which {why}")
        return "; ".join(reasons)
