"""Who may do what: the core's authorization, decided from the identity the server stamped.

NATS-free and wire-free: it is given the identity, the operation, the few fields of the body
that matter and what the core knows of the task concerned, and it answers by returning the
principal or by raising ``Refusal``. Authorization comes before state: nothing is read or
changed for a request that is refused, and a refusal says nothing about a task the caller may
not see.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hivebus_hookspecs.models import Decision, ErrorCode

from ..errors import HivebusError
from .identity import Identity
from .limits import RateLimiter
from .principals import Book, Kind, Permission, Principal, load_book
from .server_config import HIVE_ACCOUNT

__all__ = [
    "DELEGATOR_KEY",
    "STATE_CHANGING",
    "Ask",
    "Policy",
    "PrincipalSource",
    "Refusal",
    "TaskFacts",
]

DELEGATOR_KEY = "delegated_by"
"""In secure mode the core writes the delegating principal into the task's metadata under
this key (stored with the task, so ownership survives restarts and is shared by replicas)."""

STATE_CHANGING = frozenset(
    {
        "agent-register",
        "agent-deregister",
        "task-delegate",
        "task-complete",
        "task-progress",
        "task-cancel",
        "task-retry",
    }
)
"""Allowed requests of these operations are audited (heartbeats are not: too many)."""

_AS_ITSELF = frozenset({"agent-register", "agent-heartbeat", "agent-deregister"})
_HOLDER = frozenset({"task-complete", "task-progress"})
_TASK_READ = frozenset({"task-get"})
_TASK_CANCEL = frozenset({"task-cancel", "task-retry"})
_ANYONE = frozenset({"orchestrator-status", "orchestrator-plugins"})
_READERS = frozenset({"orchestrator-agents", "orchestrator-tasks"})
_WATCHERS = frozenset({"orchestrator-audit"})


class Refusal(HivebusError):
    """A request the policy refuses; carries what the audit needs."""

    def __init__(
        self,
        code: ErrorCode,
        decision: Decision,
        reason: str,
        principal: Principal | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(code, reason)
        self.decision = decision
        self.reason = reason
        self.principal = principal
        self.name = name or (principal.name if principal else None)


@dataclass(frozen=True, slots=True)
class Ask:
    """The fields of a request that authorization looks at."""

    operation: str
    agent_id: str | None = None
    task_id: str | None = None
    capabilities: tuple[str, ...] = ()
    role: str | None = None
    metadata_keys: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class TaskFacts:
    delegator: str | None
    agent_id: str | None


class PrincipalSource:
    """The book, reread when its file changes: ``auth add`` and ``auth revoke`` take effect at
    the core on the next request."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._by_key: dict[str, Principal] = {}
        self._revoked: dict[str, str] = {}
        self.refresh()

    def refresh(self) -> None:
        stat = os.stat(self._path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        book: Book = load_book(self._path)
        self._by_key = book.by_key()
        self._revoked = {key: r.name for key, r in book.revoked_by_key().items()}
        self._stamp = stamp

    def find(self, key: str) -> tuple[Principal | None, str | None]:
        """The principal with this public key, or ``None`` and the name it had if revoked."""
        # Keep the last good book when the file cannot be read: never open the bus by it.
        with contextlib.suppress(OSError, ValueError):
            self.refresh()
        return self._by_key.get(key), self._revoked.get(key)


class Policy:
    def __init__(
        self,
        principals: PrincipalSource,
        *,
        rates: Mapping[str, float],
        burst_s: float,
        max_live_tasks: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._principals = principals
        self._rates = dict(rates)
        self._burst_s = burst_s
        self.max_live_tasks = max_live_tasks
        self._limiter = RateLimiter(monotonic)

    def find(self, key: str) -> tuple[Principal | None, str | None]:
        """The principal with this public key, or ``None`` and its name if revoked."""
        return self._principals.find(key)

    def authenticate(self, identity: Identity | None) -> Principal:
        if identity is None:
            raise Refusal(
                ErrorCode.UNAUTHENTICATED,
                Decision.UNAUTHENTICATED,
                "no identity: the request did not come through the bus's authenticated import",
            )
        if identity.account != HIVE_ACCOUNT:
            raise Refusal(
                ErrorCode.UNAUTHENTICATED,
                Decision.UNAUTHENTICATED,
                f"requests from account {identity.account!r} are not served",
            )
        principal, revoked = self._principals.find(identity.user)
        if principal is None or principal.kind is Kind.CORE:
            why = f"credential of {revoked!r} was revoked" if revoked else "unknown credential"
            raise Refusal(ErrorCode.UNAUTHENTICATED, Decision.UNAUTHENTICATED, why, name=revoked)
        return principal

    def limit(self, principal: Principal) -> None:
        rate = self._rates.get(principal.kind.value)
        if rate is None or rate <= 0:
            return
        if not self._limiter.allow(principal.name, rate, max(1.0, rate * self._burst_s)):
            raise Refusal(
                ErrorCode.RATE_LIMITED,
                Decision.RATE_LIMITED,
                f"{principal.name} sends more than {rate:g} requests/s; slow down",
                principal,
            )

    def authorize(
        self,
        principal: Principal,
        ask: Ask,
        task: TaskFacts | None,
        live_tasks: Callable[[str], int],
    ) -> None:
        """Return if ``principal`` may do ``ask``; raise ``Refusal`` otherwise.

        ``task`` is what the core knows of ``ask.task_id`` (``None``: no such task), looked up
        only for the operations that need it; ``live_tasks(name)`` counts a delegator's
        queued and running tasks.
        """
        op, me = ask.operation, principal.name

        def forbid(reason: str, code: ErrorCode = ErrorCode.FORBIDDEN) -> Refusal:
            return Refusal(code, Decision.FORBIDDEN, reason, principal)

        if op in _AS_ITSELF:
            if op == "agent-deregister" and principal.kind is Kind.ADMIN:
                return
            if principal.kind is not Kind.AGENT:
                raise forbid(f"{principal.kind.value} {me} is not an agent")
            if ask.agent_id != me:
                raise forbid(f"agent {me} may act only as agent {me}, not {ask.agent_id}")
            if op == "agent-register":
                granted = set(principal.capabilities)
                extra = [c for c in ask.capabilities if granted and c not in granted]
                if extra:
                    raise forbid(f"agent {me} is not granted capabilities {extra[:5]}")
                if principal.role is not None and ask.role != principal.role:
                    raise forbid(f"agent {me} is granted role {principal.role}, not {ask.role}")
            return
        if op in _HOLDER:
            if principal.kind is not Kind.AGENT or ask.agent_id != me:
                raise forbid(f"{me} may report only as agent {me}, not {ask.agent_id}")
            if task is None or task.agent_id != me:
                # Whatever the task's state, and whether it exists: nothing more is said.
                raise forbid(
                    f"task {ask.task_id!r} is not assigned to agent {me!r}",
                    ErrorCode.NOT_TASK_OWNER,
                )
            return
        if op == "task-delegate":
            if not principal.may(Permission.DELEGATE):
                raise forbid(f"{me} may not delegate (needs 'delegate')")
            if DELEGATOR_KEY in ask.metadata_keys:
                raise forbid(f"metadata.{DELEGATOR_KEY} is set by the core, not by delegators")
            if live_tasks(me) >= self.max_live_tasks:
                raise Refusal(
                    ErrorCode.RATE_LIMITED,
                    Decision.RATE_LIMITED,
                    f"{me} has {self.max_live_tasks} tasks queued or running, the most allowed",
                    principal,
                )
            return
        if op in _TASK_READ:
            if principal.may(Permission.READ) or _involved(me, task):
                return
            raise forbid(f"{me} may not read task {ask.task_id!r}")
        if op in _TASK_CANCEL:
            if principal.may(Permission.CANCEL) or (task is not None and task.delegator == me):
                return
            raise forbid(f"{me} may not cancel or retry task {ask.task_id!r} (needs 'cancel')")
        if op in _ANYONE:
            return
        if op in _READERS:
            if principal.may(Permission.READ):
                return
            raise forbid(f"{me} may not list the bus (needs 'read')")
        if op in _WATCHERS:
            if principal.kind in (Kind.MONITOR, Kind.ADMIN):
                return
            raise forbid(f"{me} may not read the audit (monitors and admins only)")
        if op.startswith("plugin-"):
            if principal.may(Permission.PLUGINS):
                return
            raise forbid(f"{me} may not call plugin endpoints (needs 'plugins')")
        if principal.kind is Kind.ADMIN:
            return
        raise forbid(f"{me} may not call {op} (admins only)")


def _involved(name: str, task: TaskFacts | None) -> bool:
    return task is not None and name in (task.delegator, task.agent_id)
