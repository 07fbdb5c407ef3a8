"""``orchestrator.plugin_manager``: class plugins on the core's plugin host, and lookups by type.

Lookups see the class plugins registered here and the entry-point plugins whose name is a
``PluginType`` value (``performance``, ``security``, ...), the ones the ``enable_*_plugin``
flags switch. Other entry-point plugins are listed by ``hivebus plugins``, not here.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable, Generator
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ..plugins import ENTRY_POINT_GROUP
from .enums import PluginType
from .plugin_api import ClassPluginAdapter, HookPluginView, OrchestratorPlugin, PluginMetadata

if TYPE_CHECKING:
    from ..plugins import PluginHost

__all__ = ["PluginManager", "PluginNotInstalledWarning", "Registration", "warn_missing_plugins"]

log = logging.getLogger("hivebus.universal")

_TYPE_NAMES = frozenset(t.value for t in PluginType)


class PluginNotInstalledWarning(RuntimeWarning):
    """An ``enable_*_plugin`` flag is on but no plugin of that name is installed."""


def warn_missing_plugins(switches: dict[str, bool], present: list[str]) -> list[str]:
    """Warn once per plugin that is switched on but absent; return their names."""
    missing = [name for name, on in switches.items() if on and name not in present]
    for name in missing:
        warnings.warn(
            PluginNotInstalledWarning(
                f"enable_{name}_plugin is on but no hivebus plugin named {name!r} is installed: "
                f"install it (hivebus-{name}) or set enable_{name}_plugin=False"
            ),
            stacklevel=3,
        )
    return missing


class Registration:
    """What ``register_plugin`` returns. The plugin is registered (its hooks run) when this is
    returned; awaiting it gives the outcome: ``False`` when refused or ``initialize`` declined.

    The legacy guide calls ``register_plugin`` without ``await``: that must work as well, so
    the work happens at the call and the awaitable only reports it.
    """

    def __init__(self, outcome: bool = False, pending: asyncio.Task[bool] | None = None) -> None:
        self._outcome = outcome
        self._pending = pending

    def done(self) -> bool:
        return self._pending is None or self._pending.done()

    def result(self) -> bool:
        """The outcome; raises ``asyncio.InvalidStateError`` while ``initialize`` runs."""
        return self._pending.result() if self._pending is not None else self._outcome

    def __await__(self) -> Generator[Any, None, bool]:
        if self._pending is not None:
            return (yield from self._pending.__await__())
        return self._outcome


class PluginManager:
    def __init__(self, context: Callable[[Any], dict[str, Any]]) -> None:
        self._context = context
        self._adapters: dict[str, ClassPluginAdapter] = {}
        self._initializing: set[asyncio.Task[bool]] = set()
        self._host: PluginHost | None = None
        self._core: Any = None
        self._versions: dict[str, str | None] | None = None
        self.remote_core = False
        """Set by the facade when the core runs elsewhere: class plugins cannot reach it."""

    # --- the facade's side ------------------------------------------------------------

    def attach(self, host: PluginHost) -> None:
        """Before the core starts: plugins registered so far are initialized at its start-up."""
        self._host = host
        for adapter in self._adapters.values():
            host.register(adapter, adapter.name, adapter.plugin.metadata.version)

    def started(self, core_orchestrator: Any) -> None:
        """After the core started: drop the plugins that declined or lack a dependency."""
        self._core = core_orchestrator
        for name, adapter in list(self._adapters.items()):
            missing = self._missing_dependencies(adapter.plugin.metadata)
            if adapter.initialized and not missing:
                continue
            reason = _missing_reason(name, missing) if missing else "initialize declined"
            log.warning("class plugin dropped", extra={"plugin": name, "reason": reason})
            self._drop(name)

    def detach(self) -> None:
        """After the core stopped (its shutdown hook already called every ``cleanup``)."""
        self._host, self._core = None, None

    def _drop(self, name: str) -> None:
        self._adapters.pop(name, None)
        if self._host is not None:
            self._host.unregister(name)  # also forgets a refusal: a dropped plugin is gone

    # --- the legacy API ---------------------------------------------------------------

    def register_plugin(self, plugin: OrchestratorPlugin) -> Registration:
        """Attach ``plugin`` to the core's hooks and initialize it; await for the outcome.

        Works with or without ``await``: the plugin is attached at the call and initialized
        in a task of its own. Refused (the outcome is ``False``) when disabled in its metadata,
        named like a plugin already there, missing a dependency, or when ``initialize``
        returns ``False`` or raises (it is then detached again). Registered before the
        orchestrator starts, it is initialized when the core starts.
        """
        metadata = getattr(plugin, "metadata", None)
        if not isinstance(metadata, PluginMetadata):
            raise TypeError("a plugin needs a `metadata` attribute holding PluginMetadata")
        if self.remote_core:
            raise RuntimeError(
                "class plugins run inside the core; this orchestrator uses a core in another "
                "process (run_core=False): package the plugin as a hivebus entry-point plugin"
            )
        name = metadata.name
        if not metadata.enabled:
            log.info("plugin not registered: disabled in its metadata", extra={"plugin": name})
            return Registration(False)
        if name in self._adapters or (
            self._host is not None and self._host.pm.get_plugin(name) is not None
        ):
            log.warning("plugin not registered: the name is taken", extra={"plugin": name})
            return Registration(False)
        adapter = ClassPluginAdapter(plugin, self._context)
        if self._host is None:
            self._adapters[name] = adapter
            return Registration(True)
        missing = self._missing_dependencies(metadata)
        if missing:
            log.warning(
                "plugin not registered: missing dependencies",
                extra={
                    "plugin": name,
                    "missing": missing,
                    "reason": _missing_reason(name, missing),
                },
            )
            return Registration(False)
        # Attached now, initialized next: its hooks skip the work until ``initialize`` answers.
        if not self._host.register(adapter, name, metadata.version):
            self._host.unregister(name)
            return Registration(False)
        self._adapters[name] = adapter
        task = asyncio.get_running_loop().create_task(
            self._initialize(adapter), name=f"hivebus-plugin-initialize-{name}"
        )
        self._initializing.add(task)
        task.add_done_callback(self._initializing.discard)
        return Registration(pending=task)

    async def _initialize(self, adapter: ClassPluginAdapter) -> bool:
        try:
            if await adapter.start(self._core):
                return True
            log.warning(
                "plugin not registered: initialize declined", extra={"plugin": adapter.name}
            )
        except Exception:
            log.exception(
                "plugin not registered: initialize failed", extra={"plugin": adapter.name}
            )
        if self._adapters.get(adapter.name) is adapter:
            self._drop(adapter.name)
        return False

    async def unregister_plugin(self, name: str) -> bool:
        """Detach a class plugin (its ``cleanup`` runs); entry-point plugins go by config."""
        adapter = self._adapters.get(name)
        if adapter is None:
            return False
        self._drop(name)
        try:
            await adapter.stop()
        except Exception:
            log.exception("plugin cleanup failed", extra={"plugin": name})
        return True

    def get_plugin(self, name: str) -> OrchestratorPlugin | None:
        adapter = self._adapters.get(name)
        if adapter is not None:
            return adapter.plugin
        return self._hook_plugin(name)

    def get_plugins(self, plugin_type: PluginType | str) -> list[OrchestratorPlugin]:
        wanted = PluginType(plugin_type)
        found: list[OrchestratorPlugin] = [
            a.plugin for a in self._adapters.values() if a.plugin.metadata.plugin_type is wanted
        ]
        view = self._hook_plugin(wanted.value)
        if view is not None:
            found.append(view)
        return found

    # --- helpers ----------------------------------------------------------------------

    def _hook_plugin(self, name: str) -> HookPluginView | None:
        host = self._host
        if name not in _TYPE_NAMES or name in self._adapters:
            return None
        if host is None or host.pm.get_plugin(name) is None:
            return None
        return HookPluginView(name, self._version(name), host)

    def _version(self, name: str) -> str | None:
        if self._versions is None:
            self._versions = {
                ep.name: ep.dist.version if ep.dist is not None else None
                for ep in entry_points(group=ENTRY_POINT_GROUP)
            }
        return self._versions.get(name)

    def _missing_dependencies(self, metadata: PluginMetadata) -> list[str]:
        host = self._host
        return [
            dep
            for dep in metadata.dependencies
            if dep not in self._adapters and (host is None or host.pm.get_plugin(dep) is None)
        ]


def _missing_reason(name: str, missing: list[str]) -> str:
    return "; ".join(
        f"plugin {name!r} requires plugin {dep!r}, which is not registered" for dep in missing
    )
