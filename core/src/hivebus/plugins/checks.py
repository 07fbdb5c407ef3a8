"""What the plugin host checks when it loads a plugin, using pluggy's public API only.

Each check answers with a reason (the text an operator reads in ``hivebus plugins``) or
``None``; the host refuses a plugin with a reason and lists it as ``unhealthy``.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Sequence

import pluggy
from hivebus_hookspecs import PROJECT, hookspecs

__all__ = [
    "HOOKS",
    "REQUIRES_ATTRIBUTE",
    "in_requirement_order",
    "instance",
    "pending_problems",
    "requires",
    "warn_unmarked",
    "wrapper_problem",
]

REQUIRES_ATTRIBUTE = "hivebus_requires"
"""A plugin's list of the plugins it needs: it is not loaded without them, and starts after."""
HOOKS = frozenset(name for name in dir(hookspecs) if name.startswith(f"{PROJECT}_"))

log = logging.getLogger("hivebus.plugins")


def instance(plugin: object) -> object:
    """A class becomes a fresh instance (one per host, so two cores never share its state);
    a module or an instance is used as it is."""
    return plugin() if inspect.isclass(plugin) else plugin


def requires(plugin: object) -> list[str]:
    """The plugin's ``hivebus_requires``: the names of the plugins it needs."""
    required = getattr(plugin, REQUIRES_ATTRIBUTE, None) or ()
    if isinstance(required, str):
        required = [required]
    return [str(name) for name in required]


def wrapper_problem(pm: pluggy.PluginManager, plugin: object) -> str | None:
    wrappers = sorted(
        caller.name
        for caller in pm.get_hookcallers(plugin) or ()
        for impl in caller.get_hookimpls()
        if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper)
    )
    if not wrappers:
        return None
    return (
        f"{', '.join(wrappers)}: wrapper implementations (wrapper=True, hookwrapper=True) are "
        "not supported: the host calls each implementation on its own, so nothing could run "
        "inside the wrapper; use a plain implementation (tryfirst/trylast set its place)"
    )


def _did_you_mean(hook: str) -> str:
    close = difflib.get_close_matches(hook, sorted(HOOKS), n=1)
    return f" (did you mean {close[0]}?)" if close else " (see docs/hooks.md)"


def warn_unmarked(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """A ``hivebus_*`` function without ``@hookimpl`` is never called: say so."""
    for attribute in dir(plugin):
        if not attribute.startswith(f"{PROJECT}_") or attribute == REQUIRES_ATTRIBUTE:
            continue
        if callable(getattr(plugin, attribute, None)) and (
            pm.parse_hookimpl_opts(plugin, attribute) is None
        ):
            log.warning(
                "plugin function is not marked with @hookimpl and is never called",
                extra={"plugin": name, "function": attribute},
            )


def pending_problems(pm: pluggy.PluginManager) -> list[tuple[object, str, str]]:
    """Unregister each plugin pluggy's ``check_pending`` blames; return them with their names
    and the hooks they implement that do not exist (``check_pending`` stops at the first)."""
    found: list[tuple[object, str, str]] = []
    while True:
        try:
            pm.check_pending()
            return found
        except pluggy.PluginValidationError as exc:
            culprit = exc.plugin
            unknown = sorted(
                caller.name for caller in pm.get_hookcallers(culprit) or () if not caller.has_spec()
            )
            problem = "; ".join(
                f"{hook} is not a hivebus hook{_did_you_mean(hook)}" for hook in unknown
            )
            found.append((culprit, pm.get_name(culprit) or repr(culprit), problem))
            pm.unregister(culprit)


def in_requirement_order(
    pm: pluggy.PluginManager, impls: Sequence[pluggy.HookImpl]
) -> list[pluggy.HookImpl]:
    """``impls`` (in call order) reordered so each plugin comes after the plugins it requires;
    otherwise the order is kept."""
    by_plugin = {impl.plugin_name: impl for impl in impls}
    ordered: list[pluggy.HookImpl] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return  # also ends a cycle: its members keep the given order
        seen.add(name)
        for required in requires(pm.get_plugin(name)):
            visit(required)
        if name in by_plugin:
            ordered.append(by_plugin[name])

    for name in by_plugin:
        visit(name)
    return ordered
