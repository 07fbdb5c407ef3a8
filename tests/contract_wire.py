"""Speaking the wire contract with nothing but NATS and JSON, as a client in any language would.

The contract tests use these instead of the SDK so that what they prove is the contract itself:
subjects, JSON bodies, reply shapes, error headers and events.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

WAIT_S = 5.0

REQUEST_SUBJECTS = [
    "agent.register",
    "agent.heartbeat",
    "agent.deregister",
    "task.delegate",
    "task.complete",
    "task.get",
    "task.cancel",
    "task.retry",
    "task.progress",
    "orchestrator.status",
    "orchestrator.agents",
    "orchestrator.tasks",
    "orchestrator.plugins",
]
"""Every subject the core answers requests on, as the contract names them (no prefix)."""

FAST = {"offer_timeout_s": 1.0, "heartbeat_interval_s": 5.0}
"""Core settings for the contract tests: an offer timeout a loaded machine still meets (only
the deliberately silent agents wait it out), and no liveness noise."""
"""How long to wait for something that should happen promptly (a guard, never a measurement)."""

ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"

ERROR_STATUS = {
    "invalid_json": "400",
    "invalid_request": "400",
    "payload_too_large": "413",
    "unknown_agent": "404",
    "unknown_task": "404",
    "agent_exists": "409",
    "invalid_state": "409",
    "not_task_owner": "403",
    "rejected_by_plugin": "403",
    "no_agent_available": "503",
    "over_capacity": "503",
    "max_agents_reached": "503",
    "unavailable": "503",
    "reply_too_large": "507",
    "internal_error": "500",
    "unauthenticated": "401",
    "forbidden": "403",
    "rate_limited": "429",
}
"""Every error code and the numeric code its reply carries in ``Nats-Service-Error-Code``."""


@dataclass(frozen=True)
class Reply:
    body: Any
    headers: dict[str, str]


class Wire:
    """Request/reply on the contract's subjects, under the bus prefix."""

    def __init__(self, nc: Client, prefix: str = "") -> None:
        self.nc = nc
        self.prefix = prefix

    def subject(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    async def request(self, name: str, body: Any = None, *, raw: bytes | None = None) -> Reply:
        """Send ``body`` as JSON (or ``raw`` bytes as they are) and decode the reply."""
        data = raw if raw is not None else json.dumps({} if body is None else body).encode()
        msg = await self.nc.request(self.subject(name), data, timeout=WAIT_S)
        return Reply(json.loads(msg.data), dict(msg.headers or {}))

    async def ok(self, name: str, body: Any = None) -> dict[str, Any]:
        """A request that must succeed: ``{"ok": true, ...}`` and no error headers."""
        reply = await self.request(name, body)
        assert reply.body.get("ok") is True, reply.body
        assert ERROR_HEADER not in reply.headers
        return reply.body  # type: ignore[no-any-return]

    async def fail(
        self, name: str, body: Any = None, *, raw: bytes | None = None, code: str
    ) -> str:
        """A request that must be refused with ``code``; returns the error message."""
        reply = await self.request(name, body, raw=raw)
        assert reply.body == {"ok": False, "error": reply.body.get("error")}, reply.body
        error = reply.body["error"]
        assert set(error) == {"code", "message"}, error
        assert error["code"] == code, error
        assert isinstance(error["message"], str)
        assert error["message"]
        assert reply.headers[ERROR_HEADER] == error["message"]
        assert reply.headers[ERROR_CODE_HEADER] == ERROR_STATUS[code]
        return error["message"]  # type: ignore[no-any-return]

    async def still_serving(self) -> None:
        """The core answers a good request (after a bad one it must not have stopped)."""
        status = await self.ok("orchestrator.status")
        assert status["orchestrator_id"]


class Heard:
    """Messages on a subject pattern, decoded, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    @classmethod
    async def on(cls, nc: Client, pattern: str) -> Heard:
        heard = cls()

        async def keep(msg: Any) -> None:
            heard.messages.append((msg.subject, json.loads(msg.data)))

        await nc.subscribe(pattern, cb=keep)
        await nc.flush()
        return heard

    def bodies(self, subject: str | None = None, **match: Any) -> list[dict[str, Any]]:
        return [
            body
            for subj, body in self.messages
            if (subject is None or subj == subject)
            and all(body.get(k) == v for k, v in match.items())
        ]


@dataclass
class EventLog:
    """Every event seen on ``events.>``, in arrival order."""

    events: list[dict[str, Any]] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _sub: Subscription | None = None

    @classmethod
    async def follow(cls, nc: Client, prefix: str = "") -> EventLog:
        log = cls()
        subject = f"{prefix}.events.>" if prefix else "events.>"
        log._sub = await nc.subscribe(subject, cb=log._on_event)
        await nc.flush()
        return log

    async def _on_event(self, msg: Msg) -> None:
        async with self._arrived:
            self.subjects.append(msg.subject)
            self.events.append(json.loads(msg.data))
            self._arrived.notify_all()

    def names(self) -> list[str]:
        return [event["event"] for event in self.events]

    async def wait_for(self, name: str, **fields: Any) -> dict[str, Any]:
        """The first event called ``name`` whose fields include ``fields``."""

        def found() -> dict[str, Any] | None:
            for event in self.events:
                if event["event"] == name and all(event.get(k) == v for k, v in fields.items()):
                    return event
            return None

        async with asyncio.timeout(WAIT_S), self._arrived:
            await self._arrived.wait_for(lambda: found() is not None)
        event = found()
        assert event is not None
        return event

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()


class RawAgent:
    """An agent in plain NATS and JSON: it answers every offer with ``answer``.

    Accepted offers are kept in ``offers`` so a test decides when (and how) to complete them.
    Set ``gate`` to hold the answer until the test releases it; ``offered`` is set as soon as
    an offer arrives.
    """

    def __init__(
        self,
        wire: Wire,
        agent_id: str,
        capabilities: list[str] | None = None,
        *,
        answer: dict[str, Any] | None = None,
        max_tasks: int = 1,
        role: str = "worker",
    ) -> None:
        self.wire = wire
        self.agent_id = agent_id
        self.capabilities = capabilities or []
        self.answer = {"accept": True} if answer is None else answer
        self.max_tasks = max_tasks
        self.role = role
        self.offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.cancel_notices: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.gate: asyncio.Event | None = None
        self.offered = asyncio.Event()
        self._subs: list[Subscription] = []

    async def start(self) -> dict[str, Any]:
        """Subscribe to the fixed assign and cancel subjects first, then register."""
        nc = self.wire.nc
        assign = self.wire.subject(f"agent.{self.agent_id}.assign")
        cancel = self.wire.subject(f"agent.{self.agent_id}.cancel")
        self._subs = [
            await nc.subscribe(assign, cb=self._on_offer),
            await nc.subscribe(cancel, cb=self._on_cancel),
        ]
        await nc.flush()
        return await self.wire.ok(
            "agent.register",
            {
                "agent_id": self.agent_id,
                "role": self.role,
                "capabilities": self.capabilities,
                "max_tasks": self.max_tasks,
            },
        )

    async def _on_offer(self, msg: Msg) -> None:
        offer = json.loads(msg.data)
        self.offered.set()
        if self.gate is not None:
            await self.gate.wait()
        await msg.respond(json.dumps(self.answer).encode())
        self.offers.put_nowait(offer)

    async def _on_cancel(self, msg: Msg) -> None:
        self.cancel_notices.put_nowait(json.loads(msg.data))

    async def next_offer(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT_S):
            return await self.offers.get()

    async def complete(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self.wire.ok(
            "task.complete", {"task_id": task_id, "agent_id": self.agent_id, **fields}
        )

    async def next_cancel_notice(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT_S):
            return await self.cancel_notices.get()

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs = []
