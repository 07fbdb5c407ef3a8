"""The state port on JetStream key-value buckets: durable, and shared by core replicas.

Two buckets, one key per agent and per task, the value the record as JSON, history 1. Every
write is a compare-and-set on the key's revision (the expected last revision, 0 for a new key;
``kv_cas``), so replicas cannot both win a transition. Each replica follows both buckets
(``kv_follow``) and applies what the others wrote to its cache.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import orjson
from hivebus_hookspecs.models import ErrorCode
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from ...config import HivebusConfig
from ...domain.ports import Conflict, StateUnavailable
from ...domain.registry import AgentRecord
from ...domain.tasks import TaskRecord
from ...errors import HivebusError
from .cas import CasWriter
from .follow import BucketFollower, Deliver
from .seats import AgentSeats

__all__ = ["BucketNames", "JetStreamState", "jetstream_available", "open_bucket"]

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
Known = Callable[[str], int]
"""``known(key)``: the revision of ``key`` the caller has already taken in (0: none)."""
Writing = dict[str, tuple[bytes, Any]]
"""Writes of this replica awaiting their acknowledgement: key -> (stored bytes, record)."""
_WRONG_LAST = frozenset({10071, 10164})
"""JetStream's "wrong last sequence" error codes: a lost compare-and-set."""


class Unreadable:
    """Counts stored values that are not records: each is logged and skipped, never fatal.

    A value written by hand or by another program under a state bucket must not stop every
    later start (it once did: ``orjson.JSONDecodeError``, exit 1).
    """

    def __init__(self) -> None:
        self.count = 0

    def decode(self, decode: Decode, bucket: str, key: str, value: bytes, revision: int) -> Any:
        try:
            return decode(orjson.loads(value), revision)
        except Exception as exc:
            self.count += 1
            log.error(
                "unreadable record skipped",
                extra={
                    "bucket": bucket,
                    "key": key[:128],
                    "revision": revision,
                    "error": repr(exc)[:200],
                },
            )
            return None


@dataclass(frozen=True, slots=True)
class BucketNames:
    agents: str
    tasks: str
    seats: str
    limits: str

    @classmethod
    def for_prefix(cls, prefix: str) -> BucketNames:
        stem = prefix.replace(".", "_") if prefix else "hivebus"
        return cls(
            agents=f"{stem}_agents",
            tasks=f"{stem}_tasks",
            seats=f"{stem}_seats",
            limits=f"{stem}_limits",
        )


async def open_bucket(
    js: JetStreamContext, name: str, replicas: int, storage: StorageType, description: str
) -> KeyValue:
    """The key-value bucket ``name``, created (history 1) if it is missing; an existing one
    is used as it is."""
    try:
        return await js.key_value(name)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=name,
                history=1,
                replicas=replicas,
                storage=storage,
                description=description,
            )
        )


async def jetstream_available(nc: Client, timeout: float) -> bool:
    try:
        await nc.jetstream(timeout=timeout).account_info()
    except Exception:
        return False
    return True


class JetStreamState:
    def __init__(
        self,
        js: JetStreamContext,
        agents: KeyValue,
        tasks: KeyValue,
        writer: CasWriter,
        seats: AgentSeats,
        limits: KeyValue,
    ) -> None:
        self._js = js
        self._seats = seats
        self._limits = limits
        self._agents = agents
        self._tasks = tasks
        self._writer = writer
        self._followers: list[BucketFollower] = []
        self._writing: dict[str, Writing] = {agents._name: {}, tasks._name: {}}
        self.unreadable = Unreadable()

    @classmethod
    async def open(cls, nc: Client, config: HivebusConfig) -> JetStreamState:
        js = nc.jetstream(timeout=config.request_timeout_s)
        names = BucketNames.for_prefix(config.prefix)
        storage = StorageType.FILE if config.kv_storage == "file" else StorageType.MEMORY
        buckets = []
        for name in (names.agents, names.tasks):
            described = "hivebus state (see docs/operations.md)"
            buckets.append(await open_bucket(js, name, config.kv_replicas, storage, described))
        seats = await AgentSeats.open(
            js, names.seats, config.max_agents, config.kv_replicas, storage
        )
        limits = await open_bucket(
            js,
            names.limits,
            config.kv_replicas,
            storage,
            "hivebus: concurrency keys and rate windows shared by replicas",
        )
        writer = CasWriter(nc, config.request_timeout_s)
        await writer.start()
        agents, tasks = buckets
        return cls(js, agents, tasks, writer, seats, limits)

    # --- the port ---------------------------------------------------------------------

    async def _save(self, kv: KeyValue, key: str, record: AgentRecord | TaskRecord) -> int:
        data = (
            record.encoded() if isinstance(record, TaskRecord) else orjson.dumps(record.to_dict())
        )
        writing = self._writing[kv._name]
        mine = writing[key] = (data, record)
        try:
            try:
                revision = await self._writer.write(kv._pre + key, data, record.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                if record.revision != 0:
                    raise
                # The key may hold a delete marker (a deregistered agent, a forgotten task):
                # the client's create writes over one, and fails if the key is live.
                revision = await kv.create(key, data)
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError):
            # KeyNotFound: the client's create read the key back and it was purged meanwhile
            raise Conflict(key) from None
        except nats.errors.MaxPayloadError:
            raise HivebusError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"the record of {key!r} ({len(data)} bytes) does not fit in a NATS message",
            ) from None
        except _TRANSIENT as exc:
            raise StateUnavailable(f"JetStream did not store {key!r}: {exc!r}") from exc
        finally:
            if writing.get(key) is mine:
                del writing[key]
        record.revision = revision
        return revision

    async def save_agent(self, agent: AgentRecord) -> int:
        return await self._save(self._agents, agent.agent_id, agent)

    async def delete_agent(self, agent: AgentRecord) -> None:
        try:
            await self._agents.delete(agent.agent_id, last=agent.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            raise Conflict(agent.agent_id) from None
        except nats.js.errors.APIError as exc:
            # nats-py's delete reports a lost compare-and-set as a bad request (10071)
            if getattr(exc, "err_code", None) in _WRONG_LAST:
                raise Conflict(agent.agent_id) from None
            if isinstance(exc, _TRANSIENT):
                raise StateUnavailable(f"JetStream did not delete {agent.agent_id!r}") from exc
            raise
        except _TRANSIENT as exc:
            raise StateUnavailable(f"JetStream did not delete {agent.agent_id!r}") from exc

    async def load_agent(self, agent_id: str) -> AgentRecord | None:
        loaded: AgentRecord | None = await self._load(self._agents, agent_id, AgentRecord.from_dict)
        return loaded

    async def save_task(self, task: TaskRecord) -> int:
        return await self._save(self._tasks, task.task_id, task)

    async def load_task(self, task_id: str) -> TaskRecord | None:
        loaded: TaskRecord | None = await self._load(self._tasks, task_id, TaskRecord.from_dict)
        return loaded

    async def forget_task(self, task_id: str) -> None:
        try:
            await self._tasks.purge(task_id)
        except Exception as exc:  # retention is best effort; the next finish tries again
            log.warning("finished task not purged", extra={"task_id": task_id, "error": repr(exc)})

    async def claim_seat(self, agent_id: str) -> bool:
        return await self._seats.claim(agent_id)

    async def release_seat(self, agent_id: str) -> None:
        await self._seats.release(agent_id)

    async def seat_holders(self) -> set[str]:
        return await self._seats.holders()

    async def load_limit(self, key: str) -> tuple[dict[str, Any] | None, int]:
        try:
            entry = await self._limits.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        except _TRANSIENT as exc:
            raise StateUnavailable(f"JetStream did not read the limit {key!r}") from exc
        if entry.value is None or entry.revision is None:
            return None, entry.revision or 0
        try:
            value = orjson.loads(entry.value)
        except orjson.JSONDecodeError:
            log.warning("unreadable limit record, starting it afresh", extra={"key": key})
            return None, entry.revision
        return (value if isinstance(value, dict) else None), entry.revision

    async def save_limit(self, key: str, value: dict[str, Any], revision: int) -> int:
        try:
            return await self._writer.write(self._limits._pre + key, orjson.dumps(value), revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            raise Conflict(key) from None
        except _TRANSIENT as exc:
            raise StateUnavailable(f"JetStream did not store the limit {key!r}") from exc

    async def _load(self, kv: KeyValue, key: str, decode: Decode) -> Any:
        """The stored record under ``key``, or None when there is none (or it is unreadable)."""
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        except _TRANSIENT as exc:
            raise StateUnavailable(f"JetStream did not read {key!r}") from exc
        if entry.value is None or entry.revision is None:
            return None
        return self.unreadable.decode(decode, kv._name, key, entry.value, entry.revision)

    # --- watching -----------------------------------------------------------------------

    async def follow(
        self,
        on_agent: Apply,
        on_task: Apply,
        timeout: float,
        *,
        known_agent: Known | None = None,
        known_task: Known | None = None,
    ) -> None:
        """Deliver every stored record, then keep delivering changes as they are stored.

        Returns once the current contents of both buckets have been delivered, so the
        caller's cache is complete before it serves anything. With ``known_*``, a change at
        a revision the caller already holds (its own writes, echoed back) is not decoded:
        applying it would change nothing. A change that is this replica's write, arriving
        before the write's acknowledgement (the usual order), is not decoded either: it is
        the record being written, at the revision the change carries.
        """
        pairs: list[tuple[KeyValue, Decode, Apply, Known | None]] = [
            (self._agents, AgentRecord.from_dict, on_agent, known_agent),
            (self._tasks, TaskRecord.from_dict, on_task, known_task),
        ]
        for kv, decode, apply, known in pairs:
            writing = self._writing[kv._name]
            deliver = _delivery(decode, apply, known, writing, self.unreadable, kv._name)
            follower = BucketFollower(self._js, kv, deliver)
            await follower.start(timeout)
            self._followers.append(follower)

    async def close(self) -> None:
        for follower in self._followers:
            await follower.stop()
        self._followers.clear()
        await self._writer.close()


def _delivery(
    decode: Decode,
    apply: Apply,
    known: Known | None,
    writing: Writing,
    unreadable: Unreadable,
    bucket: str,
) -> Deliver:
    def deliver(key: str, value: bytes | None, revision: int) -> None:
        if known is not None and 0 < revision <= known(key):
            return  # taken in already; the cache would ignore it (it keeps the newest)
        if value is None:
            apply(key, None, revision)
            return
        mine = writing.get(key)
        if mine is not None and mine[0] == value:
            # The bytes this replica is writing: the record itself, as decoding would give.
            record = mine[1].evolve(revision=revision)
        else:
            record = unreadable.decode(decode, bucket, key, value, revision)
            if record is None:
                return
        apply(key, record, revision)

    return deliver
