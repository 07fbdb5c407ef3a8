"""The small interfaces the domain owns and the outside world implements.

The orchestrator never imports NATS or pluggy: the wire layer gives it an offer port and an
event port, the plugin host gives it the hook port, and tests may give it anything that fits.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hivebus_hookspecs.models import AgentView, Event, HealthStatus, Offer, TaskView

    from .registry import AgentRecord
    from .tasks import TaskRecord


HealthCheck = Callable[[], "tuple[HealthStatus, str] | None"]
"""A health probe from outside the domain: ``None`` when fine, else a status and the issue."""


class Conflict(Exception):
    """The stored record changed since it was read (another coroutine or another replica)."""


class StateUnavailable(Exception):
    """The store cannot be reached right now (a failover, no quorum): retrying is safe."""


__all__ = [
    "Conflict",
    "EventPort",
    "HealthCheck",
    "HookPort",
    "Later",
    "OfferOutcome",
    "OfferPort",
    "OfferResult",
    "StatePort",
    "StateUnavailable",
]


class OfferResult(enum.StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    NO_RESPONDERS = "no_responders"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class OfferOutcome:
    result: OfferResult
    reason: str | None = None

    @property
    def accepted(self) -> bool:
        return self.result is OfferResult.ACCEPTED


class OfferPort(Protocol):
    async def offer(self, agent_id: str, offer: Offer) -> OfferOutcome:
        """Ask ``agent_id`` to take the task; must return within the offer timeout."""
        ...

    async def withdraw(self, agent_id: str, task_id: str) -> None:
        """Tell ``agent_id`` to stop working on a cancelled task (no answer expected)."""
        ...


class EventPort(Protocol):
    def publish(self, event: Event) -> None:
        """Emit a lifecycle event without waiting for anyone to receive it."""
        ...


@dataclass(frozen=True, slots=True)
class Later:
    """A notification's argument built when the notification is delivered: off the request
    path, and not at all when no plugin receives it (a full line drops it). What it builds
    from must not change meanwhile (records are immutable: a transition makes a new one)."""

    build: Callable[[], Any]


class HookPort(Protocol):
    async def check_agent(self, agent: AgentView) -> None:
        """Raise ``HivebusError(rejected_by_plugin)`` if a plugin vetoes the agent."""
        ...

    async def amend_task(self, task: TaskView) -> dict[str, Any]:
        """Raise on a veto; otherwise return the merged amendments of all plugins."""
        ...

    async def select_agent(self, task: TaskView, candidates: list[AgentView]) -> str | None: ...

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Queue a notification hook call; never delays the caller. An argument given as a
        ``Later`` is built at delivery."""
        ...

    def wants(self, hook: str) -> bool:
        """True when at least one plugin implements ``hook`` (lets the core skip the work)."""
        ...

    async def health(self) -> dict[str, HealthStatus]:
        """Each plugin's health: the worse of what it reports and what the host saw."""
        ...

    async def status_contributions(self, orchestrator: Any) -> dict[str, Any]: ...


class StatePort(Protocol):
    """Where agents and tasks persist. Every write is a compare-and-set on the revision.

    A record with revision 0 is created (and conflicts if the key exists); any other revision
    must match the stored one. A write sets the record's ``revision`` to the new revision (the
    record is new, not yet shared) and returns it. ``load_*`` read the stored copy after a
    conflict (``None``: the key does not exist).
    """

    async def save_agent(self, agent: AgentRecord) -> int: ...

    async def delete_agent(self, agent: AgentRecord) -> None: ...

    async def load_agent(self, agent_id: str) -> AgentRecord | None: ...

    async def save_task(self, task: TaskRecord) -> int: ...

    async def load_task(self, task_id: str) -> TaskRecord | None: ...

    async def forget_task(self, task_id: str) -> None:
        """Drop a finished task past retention (best effort, no revision check)."""
        ...

    async def claim_seat(self, agent_id: str) -> bool:
        """Take one of the ``max_agents`` seats shared by every replica for ``agent_id``.

        ``True`` when the agent holds a seat now (it may have held it already); ``False``
        when every seat is taken. The store enforces the count, so replicas admitting at the
        same instant cannot pass it together.
        """
        ...

    async def release_seat(self, agent_id: str) -> None:
        """Give the agent's seat back (nothing when it holds none)."""
        ...

    async def seat_holders(self) -> set[str]:
        """The agents holding a seat (to find seats a crash left behind)."""
        ...

    async def load_limit(self, key: str) -> tuple[dict[str, Any] | None, int]:
        """A shared limit's record (concurrency key holders, a rate window) and its revision
        (``(None, 0)`` when there is none). Keys are dot-separated tokens of ``[A-Za-z0-9_-]``."""
        ...

    async def save_limit(self, key: str, value: dict[str, Any], revision: int) -> int:
        """Compare-and-set a limit's record on ``revision`` (0: create); the new revision.
        Raises ``Conflict`` when another writer changed it first."""
        ...
