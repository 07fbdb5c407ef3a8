"""The hooks a hivebus plugin may implement.

Every hook may be a plain function or a coroutine function; the host awaits what is awaitable
and bounds it with the configured plugin timeout. An implementation may accept any subset of
the arguments, which keeps plugins working when a hook gains an argument. Each implementation
is called on its own: an exception or timeout in one is logged, counted against that plugin's
health, and never breaks the request. The one exception is a veto: raising
:class:`hivebus_hookspecs.Rejected` (or returning ``False``) from a hook documented as able to
veto stops the request with ``rejected_by_plugin``.

The ``orchestrator`` argument is the running core seen as an
:class:`~hivebus_hookspecs.context.OrchestratorView` (read-only); ``config`` is its configuration
seen as a :class:`~hivebus_hookspecs.context.PluginConfig`.

Wrapper implementations (``wrapper=True``, ``hookwrapper=True``) are refused at load, and so is
a ``hivebus_*`` implementation that names no hook here (a misspelling): the host calls each
implementation on its own, and a hook nobody calls is a bug to report, not to ignore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pydantic import JsonValue

    from .commands import RegisterCommand
    from .context import OrchestratorView, PluginConfig, PluginContext, TaskAmendment
    from .models import AgentView, Event, TaskView

PROJECT = "hivebus"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def hivebus_startup(
    orchestrator: OrchestratorView, config: PluginConfig, context: PluginContext
) -> None:
    """Called once when the core starts, after plugins are loaded and before it serves.

    ``context`` is this plugin's own: its settings, read views, events and alerts, endpoints,
    stores, timers and actions (see ``PluginContext``); keep it to act later. Endpoints asked
    for here are served from the moment the core serves. ``config.plugin_settings(name)`` is
    the raw settings table. Plugins that declare ``hivebus_requires`` start after the plugins
    they require. Return value ignored.
    """


@hookspec
def hivebus_shutdown(orchestrator: OrchestratorView) -> None:
    """Called once when the core stops, in reverse order of start-up. Return value ignored."""


@hookspec
def hivebus_agent_register(agent: AgentView) -> bool | None:
    """Called before an agent is admitted. May veto.

    Return ``False`` or raise ``Rejected(reason)`` to refuse the registration; the agent gets
    ``rejected_by_plugin`` naming this plugin. Any other return value admits it.
    """


@hookspec
def hivebus_agent_registered(agent: AgentView) -> None:
    """Called after an agent is registered and indexed. Return value ignored."""


@hookspec
def hivebus_agent_removed(agent: AgentView, reason: str) -> None:
    """Called after an agent leaves: ``reason`` is ``deregistered`` or ``offline``.

    Its tasks have already been requeued. Return value ignored.
    """


@hookspec
def hivebus_task_delegate(task: TaskView) -> TaskAmendment | bool | None:
    """Called before a new task is scheduled. May veto or amend.

    Return ``False`` or raise ``Rejected(reason)`` to refuse the task (``rejected_by_plugin``).
    Return a dict to amend it: the keys ``priority``, ``required_capabilities``, ``metadata``
    (merged into the existing metadata) and ``payload`` are applied in plugin order; other keys
    are ignored with a warning. ``None`` leaves the task as it is.
    """


@hookspec(firstresult=True)
def hivebus_select_agent(task: TaskView, candidates: list[AgentView]) -> str | None:
    """Called to choose which capable, free agent is offered ``task`` first.

    ``candidates`` are already filtered (live, every capability, a free slot) and ordered by
    the default policy (least loaded, then idle longest). Return the ``agent_id`` of one of them
    to offer it first; the rest follow in default order. Stops at first non-None result.
    """


@hookspec
def hivebus_task_assigned(task: TaskView, agent: AgentView) -> None:
    """Called after ``agent`` accepted ``task``. Return value ignored."""


@hookspec
def hivebus_task_completed(task: TaskView) -> None:
    """Called after a task completed successfully; ``task.result`` holds the result."""


@hookspec
def hivebus_task_failed(task: TaskView) -> None:
    """Called after a task failed; ``task.error`` says why. Return value ignored."""


@hookspec
def hivebus_event(event: Event) -> None:
    """Called for every lifecycle event, with the same body published on ``events.<name>``.

    The simplest way to observe the whole bus. Return value ignored.
    """


@hookspec
def hivebus_status(orchestrator: OrchestratorView) -> dict[str, JsonValue] | None:
    """Called when ``orchestrator.status`` is requested.

    Return a JSON-ready dict; it appears under ``extensions.<plugin name>`` in the status.
    """


@hookspec
def hivebus_health() -> str | None:
    """Called to check this plugin's own health.

    Return a ``HealthStatus`` value (``healthy``, ``degraded``, ``unhealthy``, ``critical``) or
    ``None`` for healthy. The plugin's reported health is the worse of this answer and what
    the host observed (failures and timeouts of its hooks).
    """


@hookspec
def hivebus_register_commands(register: RegisterCommand) -> None:
    """Called by the ``hivebus`` command line, not the core, when it builds its parser.

    Only for plugins found through the ``hivebus.commands`` entry-point group. Call
    ``register(name, help=..., run=..., configure=...)`` once per command to add
    ``hivebus NAME``: ``configure(parser)`` adds its arguments, ``run(args)`` returns the exit
    status or an awaitable of it. Called synchronously (not awaited), so keep it cheap and
    import heavy modules inside ``run``. A name already taken is refused. Return value ignored.
    """
