"""The state port on JetStream key-value buckets: durable, and shared by core replicas.

Two buckets, one key per agent and per task, the value the record as JSON, history 1. Every
write is a compare-and-set on the key's revision (``create`` for a new key, ``update`` with
``last=revision`` otherwise), so replicas cannot both win a transition. Each replica watches
both buckets and applies what the others wrote to its cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from .config import HivebusConfig
from .domain.ports import Conflict, StateUnavailable
from .domain.registry import AgentRecord
from .domain.tasks import TaskRecord
from .owned import cancel_and_wait

__all__ = ["BucketNames", "JetStreamState", "jetstream_available"]

log = logging.getLogger("hivebus.state")

# What a leader election, a lost quorum or a reconnect looks like from a client.
_TRANSIENT = (
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.NoRespondersError,
    nats.errors.StaleConnectionError,
)

Decode = Callable[[dict[str, Any], int], Any]
Apply = Callable[[str, Any, int], None]
"""``apply(key, record_or_None_when_deleted, revision)``."""


@dataclass(frozen=True, slots=True)
class BucketNames:
    agents: str
    tasks: str

    @classmethod
    def for_prefix(cls, prefix: str) -> BucketNames:
        stem = prefix.replace(".", "_") if prefix else "hivebus"
        return cls(agents=f"{stem}_agents", tasks=f"{stem}_tasks")


async def jetstream_available(nc: Client, timeout: float) -> bool:
    try:
        await nc.jetstream(timeout=timeout).account_info()
    except Exception:
        return False
    return True


class JetStreamState:
    def __init__(self, agents: KeyValue, tasks: KeyValue) -> None:
        self._agents = agents
        self._tasks = tasks
        self._watchers: list[asyncio.Task[None]] = []

    @classmethod
    async def open(cls, nc: Client, config: HivebusConfig) -> JetStreamState:
        js = nc.jetstream(timeout=config.request_timeout_s)
        names = BucketNames.for_prefix(config.prefix)
        storage = StorageType.FILE if config.kv_storage == "file" else StorageType.MEMORY
        buckets = []
        for name in (names.agents, names.tasks):
            try:
                bucket = await js.key_value(name)
            except nats.js.errors.BucketNotFoundError:
                bucket = await js.create_key_value(
                    KeyValueConfig(
                        bucket=name,
                        history=1,
                        replicas=config.kv_replicas,
                        storage=storage,
                        description="hivebus state (see docs/operations.md)",
                    )
                )
            buckets.append(bucket)
        return cls(*buckets)

    # --- the port ---------------------------------------------------------------------

    async def _save(self, kv: KeyValue, key: str, record: AgentRecord | TaskRecord) -> int:
        data = orjson.dumps(record.to_dict())
        try:
            if record.revision == 0:
                revision = await kv.create(key, data)
            else:
                revision = await kv.update(key, data, last=record.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            raise Conflict(key) from None
        except _TRANSIENT as exc:
            raise StateUnavailable(f"JetStream did not store {key!r}: {exc!r}") from exc
        record.revision = revision
        return revision

    async def save_agent(self, agent: AgentRecord) -> int:
        return await self._save(self._agents, agent.agent_id, agent)

    async def delete_agent(self, agent: AgentRecord) -> None:
        try:
            await self._agents.delete(agent.agent_id, last=agent.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            raise Conflict(agent.agent_id) from None
        except _TRANSIENT as exc:
            raise StateUnavailable(f"JetStream did not delete {agent.agent_id!r}") from exc

    async def load_agent(self, agent_id: str) -> AgentRecord | None:
        loaded: AgentRecord | None = await _load(self._agents, agent_id, AgentRecord.from_dict)
        return loaded

    async def save_task(self, task: TaskRecord) -> int:
        return await self._save(self._tasks, task.task_id, task)

    async def load_task(self, task_id: str) -> TaskRecord | None:
        loaded: TaskRecord | None = await _load(self._tasks, task_id, TaskRecord.from_dict)
        return loaded

    async def forget_task(self, task_id: str) -> None:
        try:
            await self._tasks.purge(task_id)
        except Exception as exc:  # retention is best effort; the next finish tries again
            log.warning("finished task not purged", extra={"task_id": task_id, "error": repr(exc)})

    # --- watching -----------------------------------------------------------------------

    async def follow(self, on_agent: Apply, on_task: Apply, timeout: float) -> None:
        """Deliver every stored record, then keep delivering changes in the background.

        Returns once the current contents of both buckets have been delivered, so the
        caller's cache is complete before it serves anything.
        """
        pairs: list[tuple[KeyValue, Decode, Apply]] = [
            (self._agents, AgentRecord.from_dict, on_agent),
            (self._tasks, TaskRecord.from_dict, on_task),
        ]
        for kv, decode, apply in pairs:
            watcher = await kv.watchall()
            while True:  # the snapshot: entries, then a None marker
                entry = await watcher.updates(timeout=timeout)  # type: ignore[no-untyped-call]
                if entry is None:
                    break
                _deliver(entry, decode, apply)
            self._watchers.append(
                asyncio.create_task(
                    _follow(watcher, decode, apply), name=f"hivebus-watch-{kv._name}"
                )
            )

    async def close(self) -> None:
        await cancel_and_wait(self._watchers)
        self._watchers.clear()


async def _load(kv: KeyValue, key: str, decode: Decode) -> Any:
    """The stored record under ``key``, or None when there is none."""
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None
    except _TRANSIENT as exc:
        raise StateUnavailable(f"JetStream did not read {key!r}") from exc
    if entry.value is None or entry.revision is None:
        return None
    return decode(orjson.loads(entry.value), entry.revision)


async def _follow(watcher: KeyValue.KeyWatcher, decode: Decode, apply: Apply) -> None:
    try:
        async for entry in watcher:
            if entry is not None:
                try:
                    _deliver(entry, decode, apply)
                except Exception:
                    log.exception("state change not applied", extra={"key": entry.key})
    finally:
        with contextlib.suppress(Exception):
            await watcher.stop()  # type: ignore[no-untyped-call]


def _deliver(entry: KeyValue.Entry, decode: Decode, apply: Apply) -> None:
    revision = entry.revision or 0
    if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
        apply(entry.key, None, revision)
        return
    apply(entry.key, decode(orjson.loads(entry.value), revision), revision)
