"""Whether each state bucket has a JetStream quorum, looked at every few seconds.

A bucket whose stream has lost its leader (a majority of its replicas down) cannot be written:
every transition fails. The core cannot fix that, but it can say so: in its health (a finding
that makes it ``unhealthy``) and in the ``state`` section of its status, which the performance
plugin exports as gauges for an alert. A stream that does not answer in time counts as having
no leader, which is what a lost quorum looks like from a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import nats.errors
from hivebus_hookspecs.models import HealthStatus
from nats.js import JetStreamContext

from ...owned import cancel_and_wait

__all__ = ["BucketQuorum", "QuorumWatch", "bucket_quorum"]

log = logging.getLogger("hivebus.state")


@dataclass(frozen=True, slots=True)
class BucketQuorum:
    replicas: int
    """Replicas the bucket's stream is configured with."""
    current: int
    """Replicas up to date with the leader, the leader included (0 without a leader)."""
    leader: bool

    @property
    def has_quorum(self) -> bool:
        return self.leader and self.current > self.replicas // 2


async def bucket_quorum(js: JetStreamContext, bucket: str, timeout_s: float) -> BucketQuorum:
    try:
        async with asyncio.timeout(timeout_s):
            info = await js.stream_info(f"KV_{bucket}")
    except (TimeoutError, nats.errors.Error):
        return BucketQuorum(replicas=0, current=0, leader=False)
    replicas = info.config.num_replicas or 1
    cluster = info.cluster
    if cluster is None or (cluster.leader is None and not cluster.replicas and replicas == 1):
        return BucketQuorum(replicas=replicas, current=1, leader=True)  # a lone server
    if cluster.leader is None:
        return BucketQuorum(replicas=replicas, current=0, leader=False)
    peers = cluster.replicas or []
    current = 1 + sum(1 for peer in peers if peer.current and not peer.offline)
    return BucketQuorum(replicas=replicas, current=current, leader=True)


class QuorumWatch:
    """Looks at every bucket each ``interval_s``; ``start`` returns after the first look."""

    def __init__(
        self, js: JetStreamContext, buckets: Iterable[str], interval_s: float, timeout_s: float
    ) -> None:
        self._js = js
        self._names = list(buckets)
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self.buckets: dict[str, BucketQuorum] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._look()
        self._task = asyncio.create_task(self._run(), name="hivebus-quorum-watch")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            with contextlib.suppress(Exception):  # a bad look must not end the watch
                await self._look()

    async def _look(self) -> None:
        looks = [bucket_quorum(self._js, name, self._timeout_s) for name in self._names]
        found = dict(zip(self._names, await asyncio.gather(*looks), strict=True))
        for name, quorum in found.items():
            known = self.buckets.get(name)
            if quorum.replicas == 0 and known is not None:  # no answer: keep the known size
                found[name] = BucketQuorum(known.replicas, quorum.current, quorum.leader)
        for name, quorum in found.items():
            if self.buckets.get(name, quorum).has_quorum != quorum.has_quorum:
                level = logging.INFO if quorum.has_quorum else logging.ERROR
                log.log(
                    level, "state bucket quorum changed", extra={"bucket": name, **asdict(quorum)}
                )
        self.buckets = found

    def health(self) -> tuple[HealthStatus, str] | None:
        lost = sorted(name for name, quorum in self.buckets.items() if not quorum.has_quorum)
        if lost:
            return (
                HealthStatus.UNHEALTHY,
                f"state bucket(s) without a JetStream quorum: {', '.join(lost)}",
            )
        return None

    def section(self) -> dict[str, Any]:
        return {name: asdict(quorum) for name, quorum in self.buckets.items()}
