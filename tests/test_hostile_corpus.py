"""A randomized corpus of hostile requests across every subject, against a core running as a
process the way ``hivebus up`` runs it: every request gets a structured answer, none times
out, and afterwards the core serves and stays within its memory budget."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import string
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import eventually
from contract_wire import REQUEST_SUBJECTS, Wire
from hivebus import HivebusConfig
from hivebus.connection import connect
from hivebus.errors import MAX_MESSAGE_CHARS
from hivebus_hookspecs.models import (
    AgentsRequest,
    CompleteRequest,
    DelegateRequest,
    DeregisterRequest,
    EmptyRequest,
    ErrorCode,
    HeartbeatRequest,
    ProgressRequest,
    RegisterRequest,
    TaskRequest,
    TasksRequest,
)
from nats.aio.client import Client
from processes import Proc, spawn
from pydantic import BaseModel

MEMORY_CEILING_MIB = 512
"""What docs/operations.md promises for a default ``hivebus up`` whatever clients send."""

_MODELS: dict[str, type[BaseModel]] = {
    "agent.register": RegisterRequest,
    "agent.heartbeat": HeartbeatRequest,
    "agent.deregister": DeregisterRequest,
    "task.delegate": DelegateRequest,
    "task.complete": CompleteRequest,
    "task.get": TaskRequest,
    "task.cancel": TaskRequest,
    "task.retry": TaskRequest,
    "task.progress": ProgressRequest,
    "orchestrator.status": EmptyRequest,
    "orchestrator.agents": AgentsRequest,
    "orchestrator.tasks": TasksRequest,
    "orchestrator.plugins": EmptyRequest,
}
_FIELDS = {subject: list(model.model_fields) for subject, model in _MODELS.items()}
"""Each request subject's fields, from the models that are the contract."""


@functools.cache
def _deep(depth: int) -> bytes:
    return b'{"payload": ' + b"[" * depth + b"]" * depth + b"}"


@functools.cache
def _many_fields(count: int) -> bytes:
    return json.dumps({str(i): 0 for i in range(count)}).encode()


class Corpus:
    """Bodies of every kind of wrong, and some right ones, from one seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def word(self) -> str:
        r = self.rng
        alphabet = r.choice([string.ascii_letters + "-_", string.printable, "ab", "é☃\u0000"])
        return "".join(r.choice(alphabet) for _ in range(r.choice([0, 1, 3, 8, 40, 200])))

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        kind = r.randrange(10 if depth < 4 else 6)
        if kind == 0:
            return None
        if kind == 1:
            return r.choice([True, False])
        if kind == 2:
            return r.choice([0, 1, -1, 5, 8, 10, 10_001, 2**63, -(2**70), 0.5, 1e308, -0.0])
        if kind == 3:
            return self.word()
        if kind == 4:
            return r.choice(["low", "medium", "HIGH", " critical ", "worker", "queued", "o5"])
        if kind == 5:
            return f"id-{r.randrange(50)}"
        if kind in (6, 7):
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        return {self.word(): self.value(depth + 1) for _ in range(r.randrange(4))}

    def body(self, subject: str) -> bytes:
        r = self.rng
        kind = r.randrange(100)
        fields = _FIELDS[subject]
        if kind < 45:  # the right fields with values of any type
            chosen = r.sample(fields, r.randrange(len(fields) + 1)) if fields else []
            return json.dumps({name: self.value() for name in chosen}).encode()
        if kind < 55:  # unknown fields
            return json.dumps(
                {self.word(): self.value() for _ in range(r.randrange(1, 6))}
            ).encode()
        if kind < 62:  # not an object
            return json.dumps(self.value()).encode()
        if kind < 70:  # not JSON at all
            good = json.dumps({f: self.value() for f in fields[:2]}).encode()
            return r.choice(
                [
                    good[: r.randrange(len(good) + 1)],
                    bytes(r.randrange(256) for _ in range(r.randrange(1, 64))),
                    b"\xff" + good,
                    good.replace(b"}", b",}"),
                ]
            )
        if kind < 76:  # JSON outside RFC 8259
            constant = r.choice([b"NaN", b"Infinity", b"-Infinity"])
            field = r.choice(fields or ["x"]).encode()
            return r.choice(
                [
                    b'{"' + field + b'": ' + constant + b"}",
                    b'{"' + field + b'": 1, "' + field + b'": 2}',
                ]
            )
        if kind < 82:  # deep
            return _deep(r.choice([10, 63, 64, 65, 200, 3000]))
        if kind < 88:  # many unknown fields
            return _many_fields(r.choice([100, 5000, 25_500]))
        if kind < 93:  # large: under and over max_payload_bytes
            size = r.choice([100_000, 400_000, 524_000, 530_000, 1_000_000])
            big = r.choice(["payload", "result", "metadata"])
            filler: Any = {"m": "x" * size} if big == "metadata" else "x" * size
            body = {"task_id": f"big-{r.randrange(20)}", "agent_id": "agent-1", big: filler}
            return json.dumps(body).encode()
        # requests that would succeed
        valid = {
            "agent.register": {
                "agent_id": f"agent-{r.randrange(300)}",
                "capabilities": [f"c{r.randrange(5)}"],
                "metadata": {"m": self.word()},
            },
            "agent.heartbeat": {"agent_id": f"agent-{r.randrange(300)}"},
            "agent.deregister": {"agent_id": f"agent-{r.randrange(300)}"},
            "task.delegate": {
                "task_id": f"task-{r.randrange(3000)}",
                "required_capabilities": [f"c{r.randrange(5)}"],
                "payload": {"k": self.value()},
                "priority": r.choice(["low", 10]),
            },
            "task.complete": {"task_id": f"task-{r.randrange(3000)}", "agent_id": "agent-1"},
            "task.get": {"task_id": f"task-{r.randrange(3000)}"},
            "task.cancel": {"task_id": f"task-{r.randrange(3000)}"},
            "task.progress": {
                "task_id": f"task-{r.randrange(3000)}",
                "agent_id": "agent-1",
                "progress": r.random(),
            },
            "orchestrator.agents": {"limit": r.randrange(1, 50)},
            "orchestrator.tasks": {"limit": r.randrange(1, 500), "status": "queued"},
        }.get(subject, {})
        return json.dumps(valid).encode()


async def _storm(nc: Client, count: int, seed: int, concurrency: int = 48) -> Counter[str]:
    corpus = Corpus(seed)
    outcomes: Counter[str] = Counter()
    wrong: list[str] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(subject: str, body: bytes) -> None:
        async with gate:
            try:
                msg = await nc.request(subject, body, timeout=15)
            except Exception as exc:  # a timeout or no responders: the core went deaf
                wrong.append(f"{subject}: {exc!r} for {body[:80]!r}")
                return
        reply = json.loads(msg.data)
        if reply.get("ok") is True:
            outcomes["ok"] += 1
            return
        error = reply.get("error") or {}
        code, message = error.get("code"), error.get("message")
        if (
            reply != {"ok": False, "error": error}
            or code not in {c.value for c in ErrorCode}
            or not isinstance(message, str)
            or len(message) > MAX_MESSAGE_CHARS
            or code == "internal_error"
        ):
            wrong.append(f"{subject}: {reply!r:.300} for {body[:80]!r}")
            return
        outcomes[code] += 1

    batch: list[asyncio.Task[None]] = []
    for _ in range(count):
        subject = corpus.rng.choice(REQUEST_SUBJECTS)
        batch.append(asyncio.create_task(one(subject, corpus.body(subject))))
        if len(batch) >= 1000:
            await asyncio.gather(*batch)
            batch.clear()
    await asyncio.gather(*batch)
    assert not wrong, f"{len(wrong)} requests without a structured answer:\n" + "\n".join(
        wrong[:20]
    )
    return outcomes


@contextlib.contextmanager
def _untraced() -> Iterator[None]:
    """Pause the coverage tracer (CI measures coverage) while the test itself churns: the
    storm's client code is the test's, not the product's, and traced it is several times
    slower."""
    try:
        import coverage
    except ImportError:
        yield
        return
    current = coverage.Coverage.current()
    if current is None:
        yield
        return
    current.stop()
    try:
        yield
    finally:
        current.start()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def _run_against_a_core_process(nats_server, tmp_path: Path, count: int) -> None:
    core: Proc = spawn(
        "up", "--nats", nats_server.url, "-p", "no:performance", cwd=tmp_path,
        HIVEBUS_HEARTBEAT_INTERVAL_S="2", HIVEBUS_OFFER_TIMEOUT_S="0.2",
        # The storm measures the core, not the coverage tracer: the paths it takes are
        # covered by the other tests, at a fraction of the cost.
        COVERAGE_PROCESS_START="",
    )  # fmt: skip
    try:
        await core.until("serving on")
        nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "hostile")
        try:
            with _untraced():
                try:
                    outcomes = await _storm(nc, count, seed=count)
                except AssertionError as exc:
                    # The core's own account of any internal_error: its log, with tracebacks.
                    log = "\n".join(line for line in core.lines if "INFO" not in line)
                    raise AssertionError(f"{exc}\n--- core log ---\n{log[-6000:]}") from None
            assert outcomes["ok"] > 0
            assert outcomes["invalid_request"] > 0
            assert outcomes["invalid_json"] > 0
            assert outcomes["payload_too_large"] > 0
            await Wire(nc).still_serving()
        finally:
            await nc.close()
        assert core.popen.poll() is None, "\n".join(core.lines)
        rss = _rss_mib(core.popen.pid)
        print(f"{count} hostile requests: {dict(outcomes)}; core resident memory {rss:.0f} MiB")
        assert rss < MEMORY_CEILING_MIB, f"the core holds {rss:.0f} MiB after the storm"
    finally:
        assert core.stop() == 0, "\n".join(core.lines[-30:])


async def test_a_few_thousand_hostile_requests_all_get_structured_answers(nats_server, tmp_path):
    await _run_against_a_core_process(nats_server, tmp_path, 3_000)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_a_hundred_thousand_hostile_requests_leave_the_core_serving(nats_server, tmp_path):
    await _run_against_a_core_process(nats_server, tmp_path, 100_000)


def _shapeless(size: int) -> list[dict[str, Any]]:
    """The JSON shape that costs most memory per byte once parsed: ``[{},{},...]``."""
    return [{} for _ in range(size // 3)]


@pytest.mark.slow
async def test_filling_every_budget_keeps_the_core_under_its_memory_ceiling(nats_server, tmp_path):
    core = spawn(
        "up", "--nats", nats_server.url, "-p", "no:performance", cwd=tmp_path,
        COVERAGE_PROCESS_START="",  # measuring memory, not lines
    )  # fmt: skip
    try:
        await core.until("serving on")
        nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "filler")
        wire = Wire(nc)
        try:
            result = _shapeless(390_000)

            async def on_offer(msg: Any) -> None:
                offer = json.loads(msg.data)
                await msg.respond(b'{"accept": true}')
                body = {"task_id": offer["task_id"], "agent_id": "filler", "result": result}
                reply = await nc.request("task.complete", json.dumps(body).encode(), timeout=30)
                assert json.loads(reply.data)["ok"], reply.data

            await nc.subscribe("agent.filler.assign", cb=on_offer)
            await wire.ok("agent.register", {"agent_id": "filler", "capabilities": ["fill"]})
            payload = _shapeless(100_000)
            for i in range(30):  # finished tasks: past task_retention_bytes, the oldest go
                task_id = f"done-{i}"
                await wire.ok(
                    "task.delegate",
                    {"task_id": task_id, "required_capabilities": ["fill"], "payload": payload},
                )

                async def finished(task_id: str = task_id) -> bool:
                    task = (await wire.ok("task.get", {"task_id": task_id}))["task"]
                    return bool(task["status"] == "completed")

                await eventually(finished, timeout=90)  # each moves ~0.5 MB of costly JSON
            retained = (await wire.ok("orchestrator.tasks", {"status": "completed"}))["tasks"]
            assert 0 < len(retained) < 30  # the oldest were forgotten to keep the budget
            big = _shapeless(380_000)  # about 500 KB as the test client writes it
            for i in range(1000):  # live tasks until the budget says no
                reply = await wire.request(
                    "task.delegate",
                    {"task_id": f"live-{i}", "required_capabilities": ["nobody"], "payload": big},
                )
                if not reply.body["ok"]:
                    assert reply.body["error"]["code"] == "over_capacity"
                    assert "max_live_task_bytes" in reply.body["error"]["message"]
                    break
            else:
                pytest.fail("the live-task budget never refused a delegation")
            await wire.still_serving()
        finally:
            await nc.close()
        rss = _rss_mib(core.popen.pid)
        print(f"every budget full: core resident memory {rss:.0f} MiB")
        assert rss < MEMORY_CEILING_MIB
    finally:
        assert core.stop() == 0, "\n".join(core.lines[-30:])
